"""The profile store contract, run against RedisStore (a real redis-server) and
InMemoryStore alike, plus what only Redis has: TTL, key layout, retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis

from config.settings import load_settings
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.metrics import REDIS_WRITE_ERRORS, SERVICE_DOWN
from journeyflow.outages import RetryPolicy
from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import LOSSES, Restore, StateStore
from tests.conftest import RedisServer, free_port

TS = 1_795_343_460_000  # 2026-11-22T10:31:00Z


def row(user: str, ts_ms: int = TS, segments: tuple[str, ...] | None = None, **fields: Any) -> ProfileRow:
    return ProfileRow(user, ts_ms, fields, segments)


def change(user: str, entered: tuple[str, ...], exited: tuple[str, ...], segments: tuple[str, ...]) -> SegmentChange:
    return SegmentChange(user, TS, entered, exited, segments, "e1", {})


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "memory"])
def store_type(request: pytest.FixtureRequest) -> str:
    return request.param


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


# --- Redis only -------------------------------------------------------------------


@pytest.mark.redis
def test_redis_layout_and_prefix(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, key_prefix="test:")
    try:
        store.apply([row("u1", visits=1), change("u1", ("vip",), (), ("vip",))])
        keys = sorted(store.client.keys("*"))
        # Besides the data, the markers of loss detection: one shared, one per store (expiring).
        assert [k for k in keys if not k.startswith("test:marker")] == ["test:profile:u1", "test:segment:vip"]
        markers = [k for k in keys if k.startswith("test:marker")]
        assert len(markers) == 2 and "test:marker" in markers
        assert 0 < store.client.ttl(next(k for k in markers if k != "test:marker")) <= 86400
        assert store.client.type("test:profile:u1") == "hash"
        assert store.client.type("test:segment:vip") == "set"
    finally:
        store.close()


@pytest.mark.redis
def test_redis_that_lost_its_data_is_noticed_and_a_restore_rewrites_a_user(redis_url: str) -> None:
    store = RedisStore.connect(redis_url)
    try:
        store.apply([row("u1", visits=1), change("u1", ("vip",), (), ("vip",))])
        before = LOSSES.last()
        store.apply([row("u1", visits=2)])
        assert LOSSES.last() == before  # nothing lost
        store.client.flushdb()
        store.apply([row("u2", visits=1)])
        assert LOSSES.last() > before
        store.apply([Restore("u1", {"visits": "2", "segments": '["vip"]', "updated_at": "2026-11-22T10:31:00Z"})])
        assert store.profile("u1") == {"visits": "2", "segments": '["vip"]', "updated_at": "2026-11-22T10:31:00Z"}
        assert store.members("vip") == {"u1"}
    finally:
        store.close()


@pytest.mark.redis
def test_redis_ttl_is_reset_on_every_profile_write(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, ttl_s=120)
    try:
        store.apply([row("u1", visits=1)])
        store.client.expire("jf:profile:u1", 5)
        store.apply([change("u1", ("vip",), (), ("vip",))])
        assert 100 < store.client.ttl("jf:profile:u1") <= 120
        # Segment sets are shared by many users: they do not expire.
        assert store.client.ttl("jf:segment:vip") == -1
        # A device's alias lives as long as a profile.
        store.apply([IdentityMerge("u1", "a1", TS, "e-login")])
        assert 100 < store.client.ttl("jf:alias:a1") <= 120
    finally:
        store.close()
    no_ttl = RedisStore.connect(redis_url)
    try:
        no_ttl.apply([row("u2", visits=1)])
        assert no_ttl.client.ttl("jf:profile:u2") == -1
    finally:
        no_ttl.close()


@pytest.mark.redis
def test_redis_errors_that_cannot_heal_are_not_retried(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, policy=RetryPolicy(0.01, 0.01))
    errors_before = REDIS_WRITE_ERRORS._value.get()
    try:
        store.client.set("jf:segment:vip", "not a set")
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            store.apply([change("u1", ("vip",), (), ("vip",))])
        assert REDIS_WRITE_ERRORS._value.get() == errors_before
    finally:
        store.close()


@pytest.mark.redis
def test_redis_unreachable_at_start_up() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match=f"redis {url} unreachable after"):
        RedisStore.connect(url, connect_timeout_s=1)
    assert time.monotonic() - started < 1 + 5


@pytest.mark.redis
def test_redis_restarted_mid_run_is_retried_until_it_is_back(
    spawn_redis: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = spawn_redis()
    store = RedisStore.connect(server.url, policy=RetryPolicy(0.05, 0.4))
    caplog.set_level(logging.WARNING, logger="journeyflow.redis")
    try:
        store.apply([row("u1", visits=1)])
        errors_before = REDIS_WRITE_ERRORS._value.get()
        server.stop()
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            started = time.monotonic()
            store.apply([row("u2", visits=2), change("u2", ("vip",), (), ("vip",))])
        finally:
            restart.join()
        assert time.monotonic() - started >= 0.9  # it did wait for the restart
        assert REDIS_WRITE_ERRORS._value.get() > errors_before
        messages = [r.getMessage() for r in caplog.records if r.name == "journeyflow.redis"]
        assert "redis unavailable; input paused, retrying with back-off" in messages
        assert messages[-1] == "redis available again; input resumed"
        # The server came back empty (no persistence): the retried batch is all there.
        assert store.profile("u2") == {
            "visits": "2", "updated_at": "2026-11-22T10:31:00Z", "segments": '["vip"]'
        }
        assert store.members("vip") == {"u2"}
    finally:
        store.close()


@pytest.mark.redis
def test_redis_gives_up_only_past_the_deadline(spawn_redis: Callable[[], RedisServer]) -> None:
    server = spawn_redis()
    store = RedisStore.connect(server.url, policy=RetryPolicy(0.01, 0.05, give_up_after_s=0.5))
    errors_before = REDIS_WRITE_ERRORS._value.get()
    server.stop()
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match=r"redis \(profile store\) unavailable for \d+ s, beyond outages.give_up_after_s = 0.5"):
        store.apply([row("u1", visits=1)])
    assert time.monotonic() - started >= 0.5
    assert REDIS_WRITE_ERRORS._value.get() >= errors_before + 5
    assert SERVICE_DOWN.labels(service="redis")._value.get() == 1
    store.close()
    assert SERVICE_DOWN.labels(service="redis")._value.get() == 0


@pytest.mark.redis
def test_redis_store_from_settings(redis_url: str) -> None:
    env = {
        "JOURNEYFLOW_REDIS_URL": redis_url,
        "JOURNEYFLOW_REDIS_KEY_PREFIX": "s:",
        "JOURNEYFLOW_REDIS_PROFILE_TTL_S": "60",
    }
    store = RedisStore.from_settings(load_settings(env=env).redis)
    try:
        store.apply([row("u1", visits=1)])
        assert 0 < store.client.ttl("s:profile:u1") <= 60
    finally:
        store.close()
    with pytest.raises(ConfigError, match="redis.url must be"):
        RedisStore.from_settings(load_settings(env={}).redis)
