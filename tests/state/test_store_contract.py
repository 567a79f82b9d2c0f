"""The profile store contract, run against RedisStore (a real redis-server) and
InMemoryStore alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis

from journeyflow.records import IdentityMerge, Tombstone
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import ERASED_GUARD_S, Restore, StateStore
from tests.state.store_records import TS, change, row


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "memory"])
def store_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def redis_url_or_none(store_type: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("redis_url")) if store_type == "redis" else None


@pytest.fixture
def make_store(store_type: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., StateStore]]:
    """Return ``make(**redis_options) -> StateStore`` of the parametrised type, closed after."""
    made: list[StateStore] = []

    def make(**options: Any) -> StateStore:
        store: StateStore
        if store_type == "redis":
            store = RedisStore.connect(request.getfixturevalue("redis_url"), **options)
        else:
            store = InMemoryStore()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


# --- the contract, both implementations ------------------------------------------


def test_implements_the_protocol(make_store: Callable[..., StateStore]) -> None:
    assert isinstance(make_store(), StateStore)


def test_profile_row_stores_fields_as_text(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    store.apply([
        row("u1", segments=("vip", "cluster:3"), visits=3, engagement=0.82, channel="web",
            consented=True, top_categories=["shoes", "bags"], affinity={"shoes": 0.5}),
    ])
    assert store.profile("u1") == {
        "visits": "3",
        "engagement": "0.82",
        "channel": "web",
        "consented": "true",
        "top_categories": '["shoes","bags"]',
        "affinity": '{"shoes":0.5}',
        "updated_at": "2026-11-22T10:31:00Z",
        "segments": '["vip","cluster:3"]',
    }


def test_rows_are_partial_updates(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    store.apply([row("u1", segments=("vip",), visits=3, channel="web")])
    # None deletes a field; a row without segments leaves them alone.
    store.apply([row("u1", TS + 250, visits=4, channel=None, engagement=0.1)])
    assert store.profile("u1") == {
        "visits": "4",
        "engagement": "0.1",
        "updated_at": "2026-11-22T10:31:00.250Z",
        "segments": '["vip"]',
    }


def test_segment_changes_update_members_and_the_profile(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    store.apply([
        change("u1", ("new_visitor",), (), ("new_visitor",)),
        change("u2", ("new_visitor", "vip"), (), ("new_visitor", "vip")),
        change("u1", ("highly_engaged",), ("new_visitor",), ("highly_engaged",)),
    ])
    assert store.members("new_visitor") == {"u2"}
    assert store.members("vip") == {"u2"}
    assert store.members("highly_engaged") == {"u1"}
    assert store.members("nobody_here") == set()
    profile = store.profile("u1")
    assert profile is not None
    assert orjson.loads(profile["segments"]) == ["highly_engaged"]


def test_a_restore_rewrites_the_profile_and_leaves_the_segments_it_no_longer_has(
    make_store: Callable[..., StateStore],
) -> None:
    # The repair rewrites a user whose hash lost fields: memberships of the list the
    # hash still held must follow the restored list, as a segment change would.
    store = make_store()
    store.apply([row("u1", visits=1, channel="web"), change("u1", ("vip", "new_visitor"), (), ("vip", "new_visitor"))])
    store.apply([Restore("u1", {"visits": "2", "segments": '["vip","at_risk"]', "updated_at": "2026-11-22T10:31:00Z"})])
    assert store.profile("u1") == {"visits": "2", "segments": '["vip","at_risk"]', "updated_at": "2026-11-22T10:31:00Z"}
    assert store.members("vip") == {"u1"}
    assert store.members("at_risk") == {"u1"}
    assert store.members("new_visitor") == set()


def test_tombstone_erases_the_profile_and_memberships(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    store.apply([
        row("u1", segments=("vip",), visits=3),
        change("u1", ("vip", "new_visitor"), (), ("vip", "new_visitor")),
        change("u2", ("vip",), (), ("vip",)),
    ])
    store.apply([Tombstone("u1", TS, "e-forget", ("vip", "new_visitor"))])
    assert store.profile("u1") is None
    assert store.members("vip") == {"u2"}
    assert store.members("new_visitor") == set()
    # Erasing a user nobody knows is fine (tombstones are replayed after restarts).
    store.apply([Tombstone("ghost", TS, None, ("vip",))])
    assert store.members("vip") == {"u2"}


def test_a_merge_points_the_devices_alias_at_the_customer_and_erasure_deletes_it(
    make_store: Callable[..., StateStore],
) -> None:
    store = make_store()
    store.apply([
        row("a1", segments=("new_visitor",), visits=1),
        IdentityMerge("u1", "a1", TS, "e-login"),
        # The device's own hash and memberships go with the tombstone its merge causes.
        Tombstone("a1", TS, "e-login", ("new_visitor",), "merge"),
        IdentityMerge("u1", "a2", TS, "e-login-2"),
    ])
    assert store.alias("a1") == store.alias("a2") == "u1"
    assert store.profile("a1") is None and store.members("new_visitor") == set()
    store.apply([Tombstone("u1", TS, "e-forget", (), "forget", ("a1", "a2"))])
    assert store.alias("a1") is None and store.alias("a2") is None


def test_a_merge_that_arrives_after_the_erasure_of_its_customer_sets_no_alias(
    make_store: Callable[..., StateStore], redis_url_or_none: str | None
) -> None:
    # The merge travels straight from the device step, the erasure through the models: it may come later.
    store = make_store()
    store.apply([Tombstone("u1", TS + 60_000, "e-forget", (), "forget", ("a1",))])
    store.apply([IdentityMerge("u1", "a1", TS, "e-login"), IdentityMerge("u1", "a2", TS + 60_000, "e-login-2")])
    assert store.alias("a1") is None and store.alias("a2") is None
    # A device linked after the erasure (the customer came back) is linked again.
    store.apply([IdentityMerge("u1", "a3", TS + 120_000, "e-login-3")])
    assert store.alias("a3") == "u1"
    if redis_url_or_none is not None:
        # Redis keeps the erasure's time under a digest of the id, for a day only.
        client = redis.Redis.from_url(redis_url_or_none, decode_responses=True)
        try:
            [key] = [k for k in client.scan_iter("jf:erased:*")]
            assert "u1" not in key and client.get(key) == str(TS + 60_000)
            assert 0 < client.ttl(key) <= ERASED_GUARD_S
        finally:
            client.close()


def test_a_batch_is_applied_in_order(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    store.apply([
        row("u1", visits=1),
        change("u1", ("vip",), (), ("vip",)),
        row("u1", visits=2),
        Tombstone("u1", TS, "e-forget", ("vip",)),
        row("u1", TS + 1000, visits=3),
        change("u1", ("new_visitor",), (), ("new_visitor",)),
    ])
    assert store.profile("u1") == {
        "visits": "3",
        "updated_at": "2026-11-22T10:31:01Z",
        "segments": '["new_visitor"]',
    }
    assert store.members("vip") == set()
    assert store.members("new_visitor") == {"u1"}


def test_applying_a_batch_twice_changes_nothing(make_store: Callable[..., StateStore]) -> None:
    # What a retry after a half-applied batch, or a bytewax resume, does.
    store = make_store()
    batch = [
        row("u1", visits=1, channel="web"),
        change("u1", ("vip",), (), ("vip",)),
        row("u1", channel=None),
        change("u2", ("vip",), (), ("vip",)),
        Tombstone("u2", TS, None, ("vip",)),
    ]
    store.apply(batch)
    once = (store.profile("u1"), store.profile("u2"), store.members("vip"))
    store.apply(batch)
    assert (store.profile("u1"), store.profile("u2"), store.members("vip")) == once


def test_other_records_are_refused_before_anything_is_written(make_store: Callable[..., StateStore]) -> None:
    store = make_store()
    with pytest.raises(TypeError, match="must be ProfileRow, SegmentChange, Tombstone, Restore or IdentityMerge; got dict instead"):
        store.apply([row("u1", visits=1), {"user_id": "u1"}])  # type: ignore[list-item]
    assert store.profile("u1") is None
