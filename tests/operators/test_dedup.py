"""Deduplication: window, out-of-order repeats, memory bound."""

from __future__ import annotations

from operators.dedup import DedupConfig, DedupState, expire, is_duplicate, remember

HOUR = 3_600_000
CFG = DedupConfig(window_ms=24 * HOUR, max_ids=5)


def test_repeat_inside_the_window_is_a_duplicate_even_out_of_order() -> None:
    state = DedupState()
    remember(state, CFG, "e1", 10 * HOUR)
    remember(state, CFG, "e2", 9 * HOUR)  # arrived late
    expire(state, CFG, 10 * HOUR + 23 * HOUR)
    assert is_duplicate(state, "e1")
    assert is_duplicate(state, "e2")


def test_ids_older_than_the_window_are_freed() -> None:
    state = DedupState()
    for n in range(3):
        remember(state, CFG, f"e{n}", n * HOUR)
    expire(state, CFG, 24 * HOUR + HOUR + 1)  # e0 and e1 are now more than 24 h old
    assert list(state.seen) == ["e2"]
    assert not is_duplicate(state, "e0")


def test_memory_is_capped_per_user() -> None:
    state = DedupState()
    for n in range(50):
        remember(state, CFG, f"e{n}", n)
    assert len(state.seen) == 5
    assert list(state.seen) == [f"e{n}" for n in range(45, 50)]


def test_expiry_stops_at_the_first_id_still_in_the_window_in_arrival_order() -> None:
    cfg = DedupConfig(window_ms=1000, max_ids=10)
    # Arrival order, not event time: "late" arrived after "b" and is older, but stays
    # while an id before it is still in the window (as before).
    state = DedupState({"a": 0, "b": 900, "late": 100, "c": 950})
    expire(state, cfg, 1500)
    assert list(state.seen.items()) == [("b", 900), ("late", 100), ("c", 950)]
    expire(state, cfg, 1950)
    assert list(state.seen.items()) == [("c", 950)]
    expire(state, cfg, 5000)
    assert state.seen == {}
    expire(state, cfg, 6000)  # nothing left: nothing to do
    assert state.seen == {}
