"""Deduplication: window, out-of-order repeats, memory bound, stable digests."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from hashlib import blake2b

from operators.dedup import (
    INDEXED,
    DedupConfig,
    DedupState,
    expire,
    held_keys,
    held_times,
    id_key,
    is_duplicate,
    oldest_ms,
    remember,
)
from operators.merge import merge_dedup

HOUR = 3_600_000
CFG = DedupConfig(window_ms=24 * HOUR, max_ids=5)


def _remember(state: DedupState, cfg: DedupConfig, event_id: str, ts_ms: int) -> None:
    remember(state, cfg, id_key(event_id), ts_ms)


def _held(state: DedupState, *event_ids: str) -> list[str]:
    return [e for e in event_ids if is_duplicate(state, id_key(e))]


def test_repeat_inside_the_window_is_a_duplicate_even_out_of_order() -> None:
    state = DedupState()
    _remember(state, CFG, "e1", 10 * HOUR)
    _remember(state, CFG, "e2", 9 * HOUR)  # arrived late
    expire(state, CFG, 10 * HOUR + 23 * HOUR)
    assert _held(state, "e1", "e2", "e3") == ["e1", "e2"]


def test_ids_older_than_the_window_are_freed() -> None:
    state = DedupState()
    for n in range(3):
        _remember(state, CFG, f"e{n}", n * HOUR)
    expire(state, CFG, 24 * HOUR + HOUR + 1)  # e0 and e1 are now more than 24 h old
    assert _held(state, "e0", "e1", "e2") == ["e2"]
    assert list(held_times(state)) == [2 * HOUR] and len(held_keys(state)) == 1


def test_memory_is_capped_per_user() -> None:
    state = DedupState()
    for n in range(50):
        _remember(state, CFG, f"e{n}", n)
    assert len(held_keys(state)) == len(held_times(state)) == 5
    assert _held(state, *[f"e{n}" for n in range(50)]) == [f"e{n}" for n in range(45, 50)]
    assert oldest_ms(state) == 45


def test_expiry_stops_at_the_first_id_still_in_the_window_in_arrival_order() -> None:
    cfg = DedupConfig(window_ms=1000, max_ids=10)
    # Arrival order, not event time: "late" arrived after "b" and is older, but stays
    # while an id before it is still in the window (as before).
    state = DedupState()
    for event_id, ts in (("a", 0), ("b", 900), ("late", 100), ("c", 950)):
        _remember(state, cfg, event_id, ts)
    expire(state, cfg, 1500)
    assert _held(state, "a", "b", "late", "c") == ["b", "late", "c"] and list(held_times(state)) == [900, 100, 950]
    expire(state, cfg, 1950)
    assert _held(state, "a", "b", "late", "c") == ["c"]
    expire(state, cfg, 5000)
    assert oldest_ms(state) is None and not held_keys(state)
    expire(state, cfg, 6000)  # nothing left: nothing to do
    assert not held_keys(state) and not held_times(state)


def test_merged_ids_keep_time_order_and_the_cap() -> None:
    cfg = DedupConfig(window_ms=1000, max_ids=3)
    customer, device = DedupState(), DedupState()
    for event_id, ts in (("c1", 10), ("c2", 40)):
        _remember(customer, cfg, event_id, ts)
    for event_id, ts in (("d1", 5), ("d2", 20), ("d3", 30)):
        _remember(device, cfg, event_id, ts)
    merge_dedup(customer, device, cfg)
    assert list(held_times(customer)) == [20, 30, 40]
    assert _held(customer, "c1", "c2", "d1", "d2", "d3") == ["c2", "d2", "d3"]


def test_a_digest_is_the_snapshots_blake2b_read_as_a_signed_little_endian_int() -> None:
    # The held digests are in every snapshot: id_key must keep giving this number for an id.
    rng = random.Random(22)
    ids = ["", "e1", "e-5-12617-1", "é-ünïcode", "x" * 300]
    ids += [f"e-{rng.randrange(10**6)}-{rng.randrange(10**9)}-{rng.randrange(99)}" for _ in range(2000)]
    for event_id in ids:
        digest = blake2b(event_id.encode(), digest_size=8).digest()
        assert id_key(event_id) == int.from_bytes(digest, "little", signed=True), event_id


def test_digests_are_the_same_in_another_process_and_survive_a_snapshot() -> None:
    # A restored snapshot must still catch repeats: str hash() is salted per process, this is not.
    code = "from operators.dedup import id_key; print(id_key('e-5-12617-1'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == id_key("e-5-12617-1")
    state = DedupState()
    _remember(state, CFG, "e1", 7)
    restored = pickle.loads(pickle.dumps(state))
    assert _held(restored, "e1", "e2") == ["e1"] and list(held_times(restored)) == [7]


def test_many_ids_are_also_indexed_and_the_index_follows_every_change() -> None:
    cfg = DedupConfig(window_ms=1000, max_ids=INDEXED + 10)
    state = DedupState()
    for n in range(INDEXED):
        _remember(state, cfg, f"e{n}", n)
    assert state.index is None  # few ids: the arrays alone
    for n in range(INDEXED, INDEXED + 20):  # past the cap: the oldest go, from the set too
        _remember(state, cfg, f"e{n}", n)
    assert state.index == set(held_keys(state)) and len(held_keys(state)) == INDEXED + 10
    assert _held(state, "e9", "e10", f"e{INDEXED + 19}") == ["e10", f"e{INDEXED + 19}"]
    expire(state, cfg, 1000 + 15)  # ids before 15 leave the window: still more than INDEXED
    assert state.index == set(held_keys(state)) and oldest_ms(state) == 15
    expire(state, cfg, 1000 + INDEXED + 5)  # few left: the set goes
    assert state.index is None and _held(state, f"e{INDEXED + 4}", f"e{INDEXED + 5}") == [f"e{INDEXED + 5}"]
    other = DedupState()
    for n in range(INDEXED):
        _remember(other, cfg, f"d{n}", 500 + n)
    merge_dedup(state, other, cfg)
    assert state.index == set(held_keys(state)) and _held(state, "d0", f"e{INDEXED + 10}") == ["d0", f"e{INDEXED + 10}"]
