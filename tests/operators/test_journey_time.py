"""The per-user step's time path (operators/journey_time.py), driven through the step:
timers, a replay's ticks, the idle release and the end of input."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from bytewax.operators import StatefulLogic

from journeyflow.events import DeadLetter
from journeyflow.records import SessionSummary
from journeyflow.step_records import Tally, Tick, UserUpdate
from operators import cluster_features, features
from operators.due import next_due_ms
from operators.journey_state import view_of
from operators.variables import PROFILE
from state.serde import encode_state
from tests.helpers import at, event
from tests.operators.test_journey import MIN, Clock, _config, _of, _parse, _raw


def test_a_timer_closes_the_session_when_the_users_clock_says_so() -> None:
    # The events are from the past: the wall clock is days later. Timers
    # follow the user's own clock (event time + the offset seen at arrival).
    clock = Clock(1_900_000_000_000)
    logic = _config(clock, timers=True).build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    due = logic.notify_at()
    assert due is not None
    # Gap (30 min) + lateness (10 min) after the last event, on the wall clock.
    assert due == datetime.fromtimestamp((clock.now_ms + 40 * MIN + 1) / 1000, timezone.utc)
    clock.now_ms += 41 * MIN
    out, discard = logic.on_notify()
    (summary,) = _of(out, SessionSummary)
    assert summary.events == 1 and discard is StatefulLogic.RETAIN


def test_a_tick_closes_sessions_and_resolves_time_without_moving_the_lateness_watermark() -> None:
    logic = _config().build(None)
    logic.on_item(event_obj := _parse(event("add_to_cart", ts=at(0))))
    out, _ = logic.on_item(Tick(event_obj.ts_ms + 2 * 3_600_000, "u1"))
    assert len(_of(out, SessionSummary)) == 1
    assert [t.rule for t in out if type(t).__name__ == "Trigger"] == ["cart_abandonment"]
    # An event 15 minutes after the first is not late: the tick did not move the watermark.
    out, _ = logic.on_item(_parse(event("page_view", ts=at(15))))
    assert not _of(out, DeadLetter)


def test_a_tick_before_anything_is_due_changes_nothing_and_one_at_the_due_time_does() -> None:
    logic = _config().build(None)
    first = _parse(event("add_to_cart", ts=at(0)))
    logic.on_item(first)
    due = next_due_ms(logic.state, logic.cfg)
    # Gap (30 min) + lateness (10 min): the session is the first thing time changes.
    assert due is not None and due == first.ts_ms + 40 * MIN + 1
    before = encode_state(logic.state)
    out, _ = logic.on_item(Tick(due - 1, "u1"))
    assert out == [] and encode_state(logic.state) == before
    out, _ = logic.on_item(Tick(due, "u1"))
    assert len(_of(out, SessionSummary)) == 1


def test_an_idle_user_is_released_with_a_final_row_and_comes_back_as_new() -> None:
    day = 86_400_000
    cfg = dataclasses.replace(_config(), idle_release_ms=14 * day)
    logic = cfg.build(None)
    first = _parse(event("purchase", ts=at(0), order_id="o1", revenue=10.0))
    logic.on_item(first)
    assert next_due_ms(logic.state, logic.cfg) <= first.ts_ms + 14 * day
    out, discard = logic.on_item(Tick(first.ts_ms + 7 * day, "u1"))
    assert not [u for u in _of(out, UserUpdate) if u.kind == "final"] and discard is StatefulLogic.RETAIN
    out, discard = logic.on_item(Tick(first.ts_ms + 14 * day, "u1"))
    (final,) = [u for u in _of(out, UserUpdate) if u.kind == "final"]
    assert final.ts_ms == first.ts_ms + 14 * day and final.profile["purchases_total"] == 1
    (tally,) = _of(out, Tally)
    assert tally.processed == 1 and discard is StatefulLogic.DISCARD
    # bytewax builds a new logic for the key if anything comes: a tick finds nothing to do.
    out, discard = cfg.build(None).on_item(Tick(first.ts_ms + 20 * day, "u1"))
    assert out == [] and discard is StatefulLogic.DISCARD


def test_a_released_user_who_refused_personalization_keeps_the_refusal() -> None:
    day = 86_400_000
    logic = dataclasses.replace(_config(), idle_release_ms=14 * day).build(None)
    first = _parse(event("page_view", ts=at(0)))
    logic.on_item(first)
    logic.on_item(_parse(event("consent", ts=at(1), context={"consent": {"personalization": False}})))
    out, discard = logic.on_item(Tick(first.ts_ms + 15 * day, "u1"))
    assert discard is StatefulLogic.RETAIN and logic.state.opted_out


def _records(out: Any) -> list[str]:
    return [repr(record) for record in out]


def test_the_end_of_input_right_after_a_tick_judges_segments_once_with_the_same_outputs() -> None:
    # The replay's last tick judged the segments as of T; the end of input as of
    # the same T skips judging them again (same inputs): the same records as judging.
    outputs = []
    for forget_judgement in (False, True):
        logic = _config().build(None)
        for minutes in (0, 1, 2, 3):
            logic.on_item(_parse(event("product_view", ts=at(minutes), product_id="p1", category="c", price=5.0)))
        last = _parse(event("page_view", ts=at(4)))
        logic.on_item(last)
        tick_ms = last.ts_ms + 2 * 3_600_000
        ticked, _ = logic.on_item(Tick(tick_ms, "u1"))
        assert _of(ticked, SessionSummary)
        assert logic.judged_ms == tick_ms  # judged after the session closed
        if forget_judgement:
            logic.segments_stale()
        out, _ = logic.on_eof()
        outputs.append(_records(out))
    assert outputs[0] == outputs[1]
    assert any("kind='final'" in r for r in outputs[0])


def test_an_event_or_a_prune_at_another_time_forgets_the_judgement() -> None:
    logic = _config().build(None)
    first = _parse(event("page_view", ts=at(0)))
    logic.on_item(first)
    assert logic.judged_ms is None  # judged while the event changed the profile: not kept
    tick_ms = first.ts_ms + 2 * 3_600_000
    logic.on_item(Tick(tick_ms, "u1"))
    assert logic.judged_ms == tick_ms
    # The end of input as of a later time prunes first: judged anew, as of then.
    logic._heard_ms = tick_ms + 3_600_000
    out, _ = logic.on_eof()
    assert logic.judged_ms == tick_ms + 3_600_000
    (final,) = [r for r in out if isinstance(r, UserUpdate) and r.kind == "final"]
    assert final.ts_ms == tick_ms + 3_600_000


def _final(out: Any) -> UserUpdate:
    (final,) = [u for u in _of(out, UserUpdate) if u.kind == "final"]
    return final


def test_the_end_of_input_after_a_tick_at_its_time_gives_the_windows_as_of_then() -> None:
    # A tick two days later prunes the views out of the 24-hour product window; the end
    # of input, as of the tick, finds them pruned (and does not prune again).
    tick_ms = int(datetime.fromisoformat(at(days=2).replace("Z", "+00:00")).timestamp() * 1000)
    logic = _config().build(None)
    logic.on_item(_raw(event("product_view", ts=at(0))))
    logic.on_item(_raw(event("product_view", ts=at(1))))
    logic.on_item(Tick(tick_ms, "u1"))
    final = _final(logic.on_eof()[0])
    assert final.ts_ms == tick_ms
    assert final.profile is not None and final.profile["product_views_24h"] == {}
    assert final.profile["max_product_views_24h"] == 0


def test_an_event_applied_after_the_ticks_prune_is_pruned_at_the_end_of_input() -> None:
    # Delivered after the tick but within the lateness of the user's own latest event,
    # a view two days old is applied (and raises the peak); the end of input, as of the
    # tick, must prune again for the windows as of then.
    tick_ms = int(datetime.fromisoformat(at(days=2).replace("Z", "+00:00")).timestamp() * 1000)
    logic = _config().build(None)
    logic.on_item(_raw(event("product_view", ts=at(5))))
    logic.on_item(Tick(tick_ms, "u1"))
    logic.on_item(_raw(event("product_view", ts=at(1))))  # 4 minutes behind: on time
    assert logic.state.profile is not None and logic.state.profile.peak_views == 1  # raised from 0
    final = _final(logic.on_eof()[0])
    assert final.ts_ms == tick_ms
    assert final.profile is not None and final.profile["product_views_24h"] == {}
    assert final.profile["max_product_views_24h"] == 0


def _ms(when: str) -> int:
    return int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() * 1000)


def _scored(out: Any) -> UserUpdate:
    (scored,) = [u for u in _of(out, UserUpdate) if u.features is not None]
    return scored


def _rows_now(logic: Any, at_ms: int) -> tuple[bytes, dict[str, float]]:
    view = view_of(logic.state, logic.cfg, at_ms)
    return features.scoring_vectors(view, logic.cfg.labels), cluster_features.cluster_features(view)


def test_the_end_of_input_as_of_the_ticks_score_takes_its_rows_with_nothing_changed_since() -> None:
    # The replay's last tick closed the session and placed the user as of T; the end of
    # input as of T scores the same view: the same rows, not computed again.
    logic = _config().build(None)
    logic.on_item(_raw(event("product_view", ts=at(0), product_id="p1", category="c", price=5.0)))
    logic.on_item(_raw(event("page_view", ts=at(3))))
    tick_ms = _ms(at(3)) + 2 * 3_600_000
    ticked = _scored(logic.on_item(Tick(tick_ms, "u1", last=True))[0])
    assert ticked.learn_cluster and ticked.cluster_features is not None
    assert logic.asks.placed is not None and logic.asks.placed_ms == tick_ms  # kept (compact: model_asks)
    final = _final(logic.on_eof()[0])
    assert final.features == ticked.features
    assert final.cluster_features == ticked.cluster_features and final.cluster_features is not ticked.cluster_features
    assert final.learn_cluster
    assert (final.features, final.cluster_features) == _rows_now(logic, tick_ms)


def test_a_tick_before_the_last_keeps_no_rows_and_the_end_of_input_computes_its_own() -> None:
    # A replay's grid tick places the user as of its time; the end of input is as of a later
    # one (the last tick's), so nothing would read the rows: they are not kept.
    logic = _config().build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    grid_ms = _ms(at(0)) + 2 * 3_600_000
    assert _scored(logic.on_item(Tick(grid_ms, "u1"))[0]).learn_cluster
    assert logic.asks.placed is None and logic.asks.placed_cluster == b""
    last_ms = grid_ms + 3_600_000
    logic.on_item(Tick(last_ms, "u1", last=True))
    final = _final(logic.on_eof()[0])
    assert (final.features, final.cluster_features) == _rows_now(logic, last_ms)


def test_live_a_placed_score_keeps_no_rows() -> None:
    # Live there is no end of input after a tick: idle users would hold the rows for nothing.
    logic = _config(Clock(0), timers=True).build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    tick_ms = _ms(at(0)) + 2 * 3_600_000
    assert _scored(logic.on_item(Tick(tick_ms, "u1"))[0]).learn_cluster
    assert logic.asks.placed is None


def test_what_changes_the_profile_after_the_ticks_score_makes_the_end_of_input_compute_its_rows() -> None:
    # An on-time event applied after the tick, or a session the end of input closes,
    # changes what the rows read: the final rows are computed as of the end of input.
    late = _config().build(None)
    late.on_item(_raw(event("product_view", ts=at(5), product_id="p1", category="c", price=5.0)))
    tick_ms = _ms(at(5)) + 2 * 3_600_000
    ticked = _scored(late.on_item(Tick(tick_ms, "u1", last=True))[0])
    late.on_item(_raw(event("product_view", ts=at(1), product_id="p2", category="c", price=5.0)))  # on time
    assert late.asks.placed is None  # (any item: its session's close at the end of input would say so too)
    final = _final(late.on_eof()[0])
    assert final.features != ticked.features
    assert (final.features, final.cluster_features) == _rows_now(late, tick_ms)

    # Two sessions: the tick closes the first (and scores), the end of input the second.
    logic = _config().build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    logic.on_item(_raw(event("page_view", ts=at(35))))  # a new session; the first still open (lateness)
    logic.on_item(_raw(event("page_view", ts=at(37))))  # (a length of its own: its close moves the rows)
    tick_ms = _ms(at(41))
    out, _ = logic.on_item(Tick(tick_ms, "u1"))
    assert len(_of(out, SessionSummary)) == 1
    ticked = _scored(out)
    assert ticked.ts_ms == tick_ms
    out, _ = logic.on_eof()
    assert len(_of(out, SessionSummary)) == 1
    final = _final(out)
    assert final.features != ticked.features
    assert (final.features, final.cluster_features) == _rows_now(logic, tick_ms)


def _values_now(logic: Any, at_ms: int) -> dict[str, Any]:
    """The update variables read afresh as of ``at_ms`` (``recency_days`` null before a purchase)."""
    view = view_of(logic.state, logic.cfg, at_ms)
    values = {name: PROFILE[name].get(view) for name in logic.cfg.update_variables}
    if view.profile.last_purchase_ms is None:
        values["recency_days"] = None
    return values


def test_a_ticks_update_takes_the_judgements_values_equal_to_a_fresh_read() -> None:
    # The tick judges the segments, closes the session and scores as of its time: the
    # update it sends takes the judged inputs' values (7 of the default 12), which are
    # those a fresh read gives, in the same order; with and without a purchase, with a
    # segment change (the judgement's update) and without one (the score's).
    for purchase in (False, True):
        logic = _config().build(None)
        logic.on_item(_raw(event("product_view", ts=at(0), product_id="p1", category="c", price=5.0)))
        if purchase:
            logic.on_item(_raw(event("purchase", ts=at(2), order_id="o1", revenue=10.0)))
        logic.on_item(_raw(event("page_view", ts=at(3))))
        tick_ms = _ms(at(3)) + 2 * 3_600_000
        out, _ = logic.on_item(Tick(tick_ms, "u1", last=True))
        assert logic.judged_inputs() is not None and logic.judged_inputs()[0] == tick_ms  # type: ignore[index]
        # (The last update: one the time judgement sent before the close read the sessions then.)
        update = _of(out, UserUpdate)[-1]
        assert update.ts_ms == tick_ms and update.features is not None
        assert list(update.values.items()) == list(_values_now(logic, tick_ms).items())
        # A later tick that only judges over time and rescores (nothing closes): the same check.
        later_ms = tick_ms + 7 * 86_400_000
        update = _of(logic.on_item(Tick(later_ms, "u1"))[0], UserUpdate)[-1]
        assert update.ts_ms == later_ms
        assert list(update.values.items()) == list(_values_now(logic, later_ms).items())
