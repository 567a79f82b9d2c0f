"""The audience step's cooldowns: one shared empty dict until a user's entry trigger fires."""

from __future__ import annotations

import dataclasses

from flows.step_configs import audience_config
from journeyflow.records import Trigger
from journeyflow.step_records import UserUpdate
from operators.audience import AudienceState
from operators.rules import load_rules
from state.old_forms import default_of
from state.serde import decode_state, encode_state
from tests.helpers import settings

CFG = audience_config(load_rules(settings().rules_path))
DAY = 86_400_000


def _update(ts_ms: int, segments: tuple[str, ...], user: str = "u1") -> UserUpdate:
    return UserUpdate(user, ts_ms, "update", "event", f"e{ts_ms}", segments, {"purchases_30d": 3})


def _fired(out: object) -> list[Trigger]:
    return [record for record in out if isinstance(record, Trigger)]  # type: ignore[attr-defined]


def test_users_without_cooldowns_share_one_empty_dict_that_no_trigger_writes() -> None:
    quiet, loyal = CFG.build(None), CFG.build(None)
    assert quiet.state.cooldowns is loyal.state.cooldowns == {}
    quiet.on_item(_update(DAY, ("new_visitor",)))  # enters a segment without an entry trigger
    out, _ = loyal.on_item(_update(DAY, ("loyal",)))  # vip_welcome: a 30-day cooldown
    assert [t.rule for t in _fired(out)] == ["vip_welcome"]
    assert loyal.state.cooldowns == {"vip_welcome": DAY}
    assert loyal.state.cooldowns is not quiet.state.cooldowns
    assert quiet.state.cooldowns == {} and AudienceState().cooldowns == {}
    # The cooldown holds: leaving and entering again within it fires nothing.
    loyal.on_item(_update(2 * DAY, ()))
    out, _ = loyal.on_item(_update(3 * DAY, ("loyal",)))
    assert _fired(out) == []
    # Once it has passed, the entry fires again and the cooldown restarts.
    loyal.on_item(_update(40 * DAY, ()))
    out, _ = loyal.on_item(_update(41 * DAY, ("loyal",)))
    assert [t.rule for t in _fired(out)] == ["vip_welcome"]
    assert loyal.state.cooldowns == {"vip_welcome": 41 * DAY} and AudienceState().cooldowns == {}


def test_a_resumed_state_keeps_its_cooldowns_and_an_empty_one_gives_the_shared_one_back() -> None:
    loyal = CFG.build(None)
    loyal.on_item(_update(DAY, ("loyal",)))
    resumed = CFG.build(encode_state(loyal.state))
    assert resumed.state.cooldowns == {"vip_welcome": DAY}
    resumed.on_item(_update(2 * DAY, ()))
    out, _ = resumed.on_item(_update(3 * DAY, ("loyal",)))
    assert _fired(out) == []
    empty = decode_state(encode_state(AudienceState(segments=("x",))), AudienceState)
    assert empty.cooldowns == {}
    # A cooldown pruned away leaves the user holding the shared empty dict again.
    resumed.on_item(_update(40 * DAY, ()))
    resumed.on_item(_update(41 * DAY, ("new_visitor",)))
    assert resumed.state.cooldowns == {} and resumed.state.cooldowns is CFG.build(None).state.cooldowns


def test_the_list_is_the_journeys_segments_and_the_learned_cluster_sorted_each_once() -> None:
    logic = CFG.build(None)
    update = _update(DAY, ("new_visitor", "loyal", "new_visitor"))
    update.scores = {"cluster": 3}
    out, _ = logic.on_item(update)
    assert logic.state.segments == ("cluster:3", "loyal", "new_visitor")
    assert [r.entered for r in out if hasattr(r, "entered")] == [("cluster:3", "loyal", "new_visitor")]
    # The same memberships again (the cluster kept from the scores): no change published.
    out, _ = logic.on_item(_update(2 * DAY, ("loyal", "new_visitor")))
    assert logic.state.segments == ("cluster:3", "loyal", "new_visitor")
    assert [r for r in out if hasattr(r, "entered")] == []


def test_the_written_out_init_gives_the_fields_own_defaults() -> None:
    # AudienceState's __init__ is written out (speed), and an old snapshot's missing
    # fields take the dataclass fields' defaults (state.portable): the two must agree.
    made = AudienceState()
    for f in dataclasses.fields(AudienceState):
        expected = default_of(f)
        assert getattr(made, f.name) == expected, f.name
        if f.name == "cooldowns":
            assert getattr(made, f.name) is expected  # the shared empty, never written


def test_users_with_the_same_segments_share_one_list_and_unscored_users_one_inputs_tuple() -> None:
    first, second = CFG.build(None), CFG.build(None)
    first.on_item(_update(DAY, ("loyal", "new_visitor"), "u1"))
    second.on_item(_update(DAY, ("new_visitor", "loyal"), "u2"))
    assert first.state.segments == ("loyal", "new_visitor")
    assert first.state.segments is second.state.segments
    # Not scored yet: every variable the model rules read is missing, in one shared tuple.
    if CFG.segments.rules:
        assert first.state.model_inputs == CFG.segments.unknown
        assert first.state.model_inputs is second.state.model_inputs is CFG.segments.unknown
    # A list the user leaves for another: the new one shared too, the published change the same.
    out, _ = first.on_item(_update(2 * DAY, ("new_visitor",), "u1"))
    second.on_item(_update(2 * DAY, ("new_visitor",), "u2"))
    assert first.state.segments is second.state.segments == ("new_visitor",)
    (change,) = [record for record in out if type(record).__name__ == "SegmentChange"]
    assert change.exited == ("loyal",) and change.segments == ("new_visitor",)
