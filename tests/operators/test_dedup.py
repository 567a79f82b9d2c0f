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
