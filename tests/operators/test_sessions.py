"""Sessions: boundaries at the gap, out-of-order merging, closing by watermark."""

from __future__ import annotations

from journeyflow.events import Event
from operators.sessions import SessionConfig, add_event, next_close_ms, pop_closed, session_id, summarise

MIN = 60_000
CFG = SessionConfig(gap_ms=30 * MIN, lateness_ms=10 * MIN)


def ev(minute: float, kind: str = "page_view", n: int = 0, **fields: object) -> Event:
    return Event(f"e{minute}-{n}", kind, "u1", int(minute * MIN), "t", **fields)  # type: ignore[arg-type]


def test_gap_just_under_keeps_the_session_and_just_over_starts_a_new_one() -> None:
    open_ = []
    add_event(open_, CFG, ev(0))
    add_event(open_, CFG, Event("a", "page_view", "u1", 30 * MIN, "t"))  # exactly the gap: same
    assert len(open_) == 1
    add_event(open_, CFG, Event("b", "page_view", "u1", 60 * MIN + 1, "t"))  # gap + 1 ms: new
    assert [(s.start_ms, s.end_ms) for s in open_] == [(0, 30 * MIN), (60 * MIN + 1, 60 * MIN + 1)]


def test_a_session_closes_only_when_no_on_time_event_can_join_it() -> None:
    open_ = []
    add_event(open_, CFG, ev(0))
    assert next_close_ms(open_, CFG) == 40 * MIN + 1
    assert pop_closed(open_, CFG, watermark_ms=30 * MIN) == []  # an event at 30 min could still join
    closed = pop_closed(open_, CFG, watermark_ms=30 * MIN + 1)
    assert len(closed) == 1 and open_ == []


def test_a_late_event_bridging_two_open_sessions_merges_them() -> None:
    open_ = []
    add_event(open_, CFG, ev(0))
    add_event(open_, CFG, ev(35, "add_to_cart", product_id="p1"))
    assert len(open_) == 2
    add_event(open_, CFG, ev(20, "purchase", revenue=10.0))
    assert len(open_) == 1
    merged = summarise(open_[0], "u1")
    assert (merged.events, merged.add_to_cart, merged.purchases, merged.revenue) == (3, 1, 1, 10.0)
    assert merged.start_ms == 0 and merged.end_ms == 35 * MIN


def test_end_of_input_closes_everything_and_ids_are_deterministic() -> None:
    open_ = []
    add_event(open_, CFG, ev(0))
    add_event(open_, CFG, ev(100))
    closed = pop_closed(open_, CFG, None)
    assert [summarise(s, "u1").session_id for s in closed] == [session_id("u1", 0), session_id("u1", 100 * MIN)]
    assert session_id("u1", 0) != session_id("u2", 0)
