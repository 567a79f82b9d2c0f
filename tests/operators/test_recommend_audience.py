"""The audience step with the customers' lists in it: the same records as the audience
step alone, with the list added; each part's lifetime; snapshots."""

from __future__ import annotations

from typing import Any

from flows.step_configs import audience_config
from journeyflow.records import ProfileRow, SegmentChange, Tombstone
from journeyflow.step_records import UserUpdate
from operators.audience import AudienceState
from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig
from operators.recommend_audience import AudienceListsLogic, build_audience_lists
from operators.rules import load_rules
from state.serde import encode_state
from tests.helpers import settings

RULES = load_rules(settings().rules_path)
CFG = RecommendConfig(size=3)


def _update(ts_ms: int, kind: str = "update", segments: tuple[str, ...] = ("new_visitor",)) -> UserUpdate:
    return UserUpdate("u1", ts_ms, kind, "event", f"e{ts_ms}", segments, {"days_since_last_seen": 1.0})


def _answer(ts_ms: int, product: str, found: tuple[tuple[str, float], ...]) -> RecAnswer:
    ask = RecAsk("u1", ts_ms, "view", product, "c", (), ())
    successors = Found(tuple(p for p, _ in found), tuple(w for _, w in found), 1.0)
    return RecAnswer(ask, successors, ("p1", "p2"), (), None)


def _changes(out: Any) -> list[SegmentChange]:
    return [o for o in out if isinstance(o, SegmentChange)]


def test_records_are_the_audience_steps_with_the_list_added() -> None:
    alone = audience_config(RULES).build(None)
    expected, _ = alone.on_item(_update(5))
    logic = build_audience_lists(audience_config(RULES), CFG)(None)
    out, discard = logic.on_batch([_answer(1, "a", (("b", 0.6), ("c", 0.4))), _update(5)])
    (change,) = _changes(out)
    (before,) = _changes(expected)
    assert change.profile == {**before.profile, "recommendations": ["b", "c", "p1"]}
    assert change.fields == (*before.fields, "recommendations")
    assert (change.entered, change.segments, change.cause_event_id) == (before.entered, before.segments, "e5")
    assert discard is False


def test_answers_of_a_batch_are_blended_in_time_order() -> None:
    logic = build_audience_lists(audience_config(RULES), CFG)(None)
    # A late event's ask is answered after the later one's: answers can come out of time order.
    later, earlier = _answer(2, "b", (("x", 1.0),)), _answer(1, "a", (("y", 1.0),))
    logic.on_batch([later, earlier])
    assert logic.lists is not None and logic.lists.published[0] == "x"  # the latest view's successor leads


def test_an_erasure_drops_both_parts_and_later_answers_to_earlier_events() -> None:
    logic = build_audience_lists(audience_config(RULES), CFG)(None)
    logic.on_batch([_answer(1, "a", (("b", 1.0),)), _update(2)])
    out, discard = logic.on_batch([_update(3, "erase", ())])
    assert [type(o) for o in out] == [Tombstone]
    # The lists part keeps the erasure's time, to ignore answers still on their way.
    assert logic.audience is None and logic.lists is not None and not discard
    out, discard = logic.on_batch([_answer(2, "b", (("c", 1.0),))])
    assert out == [] and logic.lists is not None and logic.lists.published == []


def test_the_key_is_discarded_when_neither_part_holds_anything() -> None:
    logic = build_audience_lists(audience_config(RULES), CFG)(None)
    out, discard = logic.on_batch([_update(1, segments=())])
    assert out == [] and discard is True


def test_snapshots_resume_both_parts_and_an_audience_snapshot_from_before() -> None:
    build = build_audience_lists(audience_config(RULES), CFG)
    logic = build(None)
    logic.on_batch([_answer(1, "a", (("b", 1.0),)), _update(2)])
    resumed = build(logic.snapshot())
    assert isinstance(resumed, AudienceListsLogic)
    assert resumed.lists is not None and resumed.lists.published == ["b", "p1", "p2"]
    assert resumed.audience is not None and resumed.audience.state.segments == ("new_visitor",)
    # The audience step's snapshot of a worker from before the lists joined it.
    old = build(encode_state(AudienceState(segments=("loyal",))))
    assert old.audience is not None and old.audience.state.segments == ("loyal",) and old.lists is None


def _cause(update: UserUpdate, cause: str) -> UserUpdate:
    update.cause = cause
    return update


def test_a_session_close_a_tick_or_the_final_update_lets_the_lists_scores_rest() -> None:
    logic = build_audience_lists(audience_config(RULES), CFG)(None)
    logic.on_batch([_answer(1, "a", (("b", 0.6), ("c", 0.4)))])
    lists = logic.lists
    assert lists is not None and list(lists.state.scores) == ["b", "c"]
    logic.on_batch([_update(2)])  # an event's update: the session goes on
    assert lists.state.scores and lists._rest_scores is None
    out, _ = logic.on_batch([_cause(_update(3, segments=("new_visitor", "x")), "session_close")])
    assert lists.state.scores == {} and lists._rest_products == ("b", "c")
    (change,) = _changes(out)
    assert change.profile["recommendations"] == ["b", "c", "p1"]  # the list as before resting
    # The next answer wakes them: the same scores, then blended.
    logic.on_batch([_answer(4, "b", (("d", 1.0),))])
    assert list(lists.state.scores) == ["b", "c", "d"] and lists._rest_scores is None
    # The parts called one at a time (as scripts/bench_parts.py drives them) rest too.
    logic.lists_part(logic.audience_part([_cause(_update(5), "time")]))
    assert lists.state.scores == {} and lists._rest_products == ("b", "c", "d")
    logic.on_batch([_answer(6, "c", (("e", 1.0),))])
    final = _update(7, kind="final")
    final.profile = {"x": 1}
    logic.on_batch([final])
    assert lists.state.scores == {} and lists.state.final is not None
    out, _ = logic.on_eof()
    (row,) = [o for o in out if isinstance(o, ProfileRow)]
    assert row.fields["recommendations"] == lists.published and lists.published[0] == "e"
