"""The rules part of the per-user step: segments re-decided, event and session triggers fired."""

from __future__ import annotations

import orjson

from flows.step_configs import journey_config
from journeyflow.step_records import UserUpdate
from operators import profile_events, profiles, sessions, updates
from operators.decisions import evaluate_segments, event_triggers, session_triggers
from operators.journey_state import JourneyState
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
MIN = 60_000


def _apply(state: JourneyState, doc: dict) -> object:
    parsed = CFG.parser.parse(orjson.dumps(doc), "t:1")
    state.max_ts_ms = parsed.ts_ms
    sessions.add_event(state.sessions, CFG.sessions, parsed)
    if state.profile is None:
        state.profile = profiles.new_profile(parsed.ts_ms)
    profile_events.apply_event(state.profile, CFG.profiles, parsed)
    return parsed


def test_segments_change_once_and_unchanged_inputs_decide_nothing() -> None:
    state = JourneyState(user="u1")
    first = _apply(state, event("page_view", ts=at(0)))
    out: list = []
    changed, inputs = evaluate_segments(state, CFG, first.ts_ms, "event", first.event_id, None, out)
    assert changed and "new_visitor" in state.segments and state.evaluated_ms == first.ts_ms
    (update,) = out
    assert isinstance(update, UserUpdate) and update.cause_event_id == first.event_id and update.values
    again: list = []
    assert evaluate_segments(state, CFG, first.ts_ms, "time", None, inputs, again) == (False, inputs)
    assert again == []


def test_a_user_without_a_profile_is_not_judged() -> None:
    state = JourneyState(user="u1")
    assert evaluate_segments(state, CFG, 0, "time", None, None, []) == (False, None)


def test_a_session_closing_with_a_full_cart_fires_cart_abandonment() -> None:
    state = JourneyState(user="u1")
    _apply(state, event("add_to_cart", ts=at(0)))
    (session,) = sessions.pop_closed(state.sessions, CFG.sessions, None)
    summary = sessions.summarise(session, state.user)
    profile_events.close_session(state.profile, CFG.profiles, session.start_ms, session.end_ms, summary.converted)
    out: list = []
    session_triggers(state, CFG, session, summary, out)
    assert [t.rule for t in out] == ["cart_abandonment"]
    assert out[0].ts_ms == session.end_ms + CFG.sessions.gap_ms


def test_event_triggers_read_the_event_and_its_product() -> None:
    state = JourneyState(user="u1")
    fired: list = []
    for minute in range(6):
        parsed = _apply(state, event("product_view", ts=at(minute), product_id="sku-9"))
        event_triggers(state, CFG, parsed, fired)
    rules = {t.rule for t in fired}
    # Repeated views of one product: the shipped rules' product interest fires (once: cooldown).
    assert rules == {"product_interest"} and len(fired) == 1
    assert updates.tallies(state) == []


def test_each_event_type_has_the_event_rules_that_match_it_in_rule_order() -> None:
    for kind in ("page_view", "product_view", "purchase", "add_to_cart", "email_click"):
        expected = tuple(r for r in CFG.event_triggers if r.event_types is None or kind in r.event_types)
        assert CFG.event_rules.get(kind, CFG.any_event_rules) == expected


def test_what_each_trigger_rule_reads_is_derived_once_when_it_is_made() -> None:
    # Compiled by mypyc a rule has no instance dict, so these are fields set at
    # construction rather than cached properties (which would recompute at every read).
    interest = next(r for r in CFG.triggers.rules if r.name == "product_interest")
    assert interest.map_fields("event") is interest.map_fields("event")
    assert set(interest.map_fields("event")) == {"product_id", "category"}
    assert interest.map_fields("session") == {}
    cart = next(r for r in CFG.triggers.rules if r.name == "cart_abandonment")
    assert set(cart.map_fields("session")) == {"abandoned"}
    assert cart.profile_variables is cart.profile_variables


def test_trigger_rules_are_listed_by_kind_in_rule_order() -> None:
    triggers = CFG.triggers
    for kind in ("event", "session_close", "segment_entry", "nothing"):
        assert triggers.on(kind) == tuple(r for r in triggers.rules if r.on == kind)
