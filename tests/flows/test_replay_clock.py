"""The replay's clock: ticks as event time passes, a last tick for everyone, and links followed."""

from __future__ import annotations

from typing import Any

from flows.files import ReplayProgress
from flows.replay_clock import RUN_END, ReplayClock, replay_items
from journeyflow.events import Event
from journeyflow.step_records import Expect, Finish, Tick


def _event(user: str, ts_ms: int, type_: str = "page_view", *, anonymous_id: str | None = None, known: bool = True) -> Event:
    return Event(f"e{ts_ms}-{user}", type_, user, ts_ms, "test", user_id=user if known else None, anonymous_id=anonymous_id)


def _shape(items: list[Any]) -> list[tuple[Any, ...]]:
    """Return (kind, key, time, position) of each item, plus the device flag of a tick."""
    shaped: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, Tick):
            shaped.append(("tick", item.user, item.ts_ms, item.seq, item.device))
        elif isinstance(item, Expect):
            shaped.append(("expect", item.user, item.seq))
        else:
            shaped.append(("event", item.user, item.ts_ms, item.seq))
    return shaped


def test_users_seen_within_the_window_hear_every_tick_and_everyone_hears_the_last_time() -> None:
    clock = ReplayClock(tick_ms=1000, window_ms=3000, link_idle_ms=5000)
    progress = ReplayProgress()
    items = list(replay_items([_event("a", 500), _event("b", 1500), _event("a", 4700)], clock, progress))
    assert _shape(items) == [
        ("event", "a", 500, 1),
        ("tick", "a", 1000, 2, False),
        ("event", "b", 1500, 3),
        # Most recently seen first; at 4000, a (last seen at 500) is outside the window.
        ("tick", "b", 2000, 4, False),
        ("tick", "a", 2000, 5, False),
        ("tick", "b", 3000, 6, False),
        ("tick", "a", 3000, 7, False),
        ("tick", "b", 4000, 8, False),
        ("event", "a", 4700, 9),
        ("tick", "b", 4700, 10, False),
        ("tick", "a", 4700, 11, False),
    ]
    assert (progress.users, progress.last_ts_ms) == (2, 4700)
    # Only the last ticks say so (the end of input follows them as of the same time).
    assert [item.seq for item in items if isinstance(item, Tick) and item.last] == [10, 11]


def test_a_linked_device_goes_to_its_customer_until_the_link_is_idle_too_long() -> None:
    clock = ReplayClock(tick_ms=1_000_000, window_ms=1_000_000, link_idle_ms=5000)
    events = [
        _event("d", 100, known=False, anonymous_id="d"),
        _event("c", 200, "login", anonymous_id="d"),
        _event("d", 300, known=False, anonymous_id="d"),
        _event("d", 5301, known=False, anonymous_id="d"),  # 5001 ms after the device was last seen
    ]
    items = list(replay_items(events, clock, ReplayProgress()))
    assert _shape(items) == [
        ("event", "d", 100, 1),
        ("event", "c", 200, 2),
        ("expect", "c", 2),
        ("event", "c", 300, 3),
        ("event", "d", 5301, 4),
        ("tick", "c", 5301, 5, False),
        ("tick", "d", 5301, 6, True),
    ]
    # The spliced events keep everything else they carried.
    assert items[3].user_id is None and items[3].anonymous_id == "d" and items[3].event_id == "e300-d"


def test_no_events_no_ticks() -> None:
    progress = ReplayProgress()
    assert list(replay_items([], ReplayClock(tick_ms=1000, window_ms=1000, link_idle_ms=1000), progress)) == []
    assert (progress.users, progress.last_ts_ms) == (0, None)


def test_finishing_sends_every_key_a_finish_after_the_last_ticks_devices_first_each_in_key_order() -> None:
    clock = ReplayClock(tick_ms=1_000_000, window_ms=1_000_000, link_idle_ms=5000)
    events = [
        _event("z", 100),
        _event("d2", 150, known=False, anonymous_id="d2"),
        _event("c", 200, "login", anonymous_id="d3"),  # d3: linked, never anonymous
        _event("b", 300),
        _event("d1", 400, known=False, anonymous_id="d1"),
    ]
    progress = ReplayProgress()
    items = list(replay_items(events, clock, progress, finish=True))
    last_tick = max(i for i, item in enumerate(items) if isinstance(item, Tick))
    ends = [i for i, item in enumerate(items) if item is RUN_END]
    # The last ticks, a batch end, the device step's keys, a batch end, the customers.
    assert ends == [last_tick + 1, last_tick + 5]
    finishes = [item for item in items if isinstance(item, Finish)]
    assert [(f.user, f.device) for f in finishes] == [
        ("d1", True), ("d2", True), ("d3", True), ("b", False), ("c", False), ("z", False),
    ]
    seqs = [item.seq for item in items if item is not RUN_END and not isinstance(item, Expect)]
    assert seqs == sorted(seqs) and progress.finishing
    # Without finish (a cluster, or several workers), bytewax's end of input finishes everyone.
    plain = list(replay_items(events, clock, ReplayProgress()))
    assert plain == items[: last_tick + 1]
