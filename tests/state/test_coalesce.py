"""A batch's rows and segment changes merged per user (state/coalesce.py) leave Redis as
applying the records one by one does: random batches against a real redis-server, with
the in-memory store (the contract's other implementation) applied record by record as
the reference, and Redis fed one record per batch as a second one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone
from state.coalesce import RowPatch, coalesce
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import Restore, StoreRecord

pytestmark = pytest.mark.redis

TS = 1_795_343_460_000
USERS = ("u1", "u2", "u3")
SEGMENTS = ("a", "b", "c", "d")
VALUES: tuple[Any, ...] = (None, 1, 2.5, "web", True)


def _segments(rng: random.Random) -> tuple[str, ...]:
    return tuple(sorted(rng.sample(SEGMENTS, rng.randint(0, 3))))


def _record(rng: random.Random, n: int) -> StoreRecord:
    user = rng.choice(USERS)
    ts = TS + rng.randint(-2, 2) * 250  # rows out of time order too: updated_at only moves forward
    kind = rng.random()
    if kind < 0.45:
        fields = {f"f{i}": rng.choice(VALUES) for i in rng.sample(range(4), rng.randint(0, 3))}
        return ProfileRow(user, ts, fields, _segments(rng) if rng.random() < 0.5 else None)
    if kind < 0.8:
        listed = _segments(rng)
        exited = tuple(s for s in SEGMENTS if s not in listed and rng.random() < 0.4)
        return SegmentChange(user, ts, listed[:1], exited, listed, f"e{n}", {})
    if kind < 0.87:
        return IdentityMerge(user, rng.choice(("d1", "d2")), ts, f"e{n}")
    if kind < 0.94:
        return Restore(user, {"f0": "r", "segments": f'["{rng.choice(SEGMENTS)}"]', "updated_at": "2026-11-22T10:31:00Z"})
    return Tombstone(user, ts, f"e{n}", _segments(rng), aliases=("d1",) if rng.random() < 0.5 else ())


def _state(store: Any) -> dict[str, Any]:
    return {
        "profiles": {user: store.profile(user) for user in USERS},
        "members": {segment: store.members(segment) for segment in SEGMENTS},
        "aliases": {device: store.alias(device) for device in ("d1", "d2")},
    }


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.connect(redis_url)
    yield store
    store.close()


@pytest.mark.parametrize("seed", range(40))
def test_a_coalesced_batch_leaves_redis_as_the_records_one_by_one(redis_store: RedisStore, seed: int) -> None:
    rng = random.Random(seed)
    client: redis.Redis = redis_store.client
    client.flushdb()
    batch = [_record(rng, n) for n in range(rng.randint(5, 40))]
    assert len(coalesce(batch)) < len(batch) or len(batch) < 8  # the batches do merge
    redis_store.apply(batch)
    one_by_one = InMemoryStore()
    for record in batch:
        one_by_one.apply([record])
    assert _state(redis_store) == _state(one_by_one)
    # Redis itself, one record per batch (nothing merged), agrees too, also with
    # memberships its hashes do not list (a hash that expired while its sets did not).
    stale = [(rng.choice(SEGMENTS), user) for user in USERS for _ in range(2)]
    results = []
    for batches in ([batch], [[record] for record in batch]):
        client.flushdb()
        for segment, user in stale:
            client.sadd(f"jf:segment:{segment}", user)
        for records in batches:
            redis_store.apply(records)
        results.append(_state(redis_store))
    assert results[0] == results[1]


def test_the_last_list_wins_and_earlier_lists_are_left(redis_store: RedisStore) -> None:
    redis_store.apply([
        ProfileRow("u1", TS, {"visits": 1}, ("a", "b")),
        SegmentChange("u1", TS, ("c",), ("a",), ("b", "c"), "e1", {}),
        ProfileRow("u1", TS - 1000, {"visits": 2}, None),
    ])
    assert redis_store.profile("u1") == {"visits": "2", "segments": '["b","c"]', "updated_at": "2026-11-22T10:31:00Z"}
    assert [redis_store.members(s) for s in ("a", "b", "c")] == [set(), {"u1"}, {"u1"}]


def test_a_tombstone_splits_a_users_records() -> None:
    records: list[StoreRecord] = [
        ProfileRow("u1", TS, {"visits": 1}),
        ProfileRow("u2", TS, {"visits": 1}),
        Tombstone("u1", TS, "e1"),
        ProfileRow("u1", TS, {"visits": 9}),
        ProfileRow("u2", TS, {"visits": 2}),
    ]
    out = coalesce(records)
    assert [(type(r).__name__, r.user_id) for r in out] == [  # type: ignore[attr-defined]
        ("RowPatch", "u1"), ("RowPatch", "u2"), ("Tombstone", "u1"), ("RowPatch", "u1")
    ]
    assert isinstance(out[1], RowPatch) and out[1].updates == {"visits": "2"}


def test_a_changes_exited_segments_are_left_even_if_the_hash_does_not_list_them(redis_store: RedisStore) -> None:
    client: redis.Redis = redis_store.client
    client.flushdb()
    client.sadd("jf:segment:x", "u1")  # the hash expired, its membership did not
    redis_store.apply([SegmentChange("u1", TS, ("a",), ("x",), ("a",), "e1", {}), ProfileRow("u1", TS, {"visits": 1})])
    assert (redis_store.members("x"), redis_store.members("a")) == (set(), {"u1"})
