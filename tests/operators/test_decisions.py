"""The rules part of the per-user step: segments re-decided, event and session triggers fired."""

from __future__ import annotations

import orjson

from flows.step_configs import journey_config
from journeyflow.step_records import UserUpdate
from operators import profile_events, profiles, sessions, updates
from operators.decisions import evaluate_segments, event_triggers, session_triggers
from operators.journey_state import JourneyState, own_containers, view_of
from operators.rules import load_rules, parse_rules
from operators.variables import PROFILE, SESSION_CLOSE, SESSION_START, changed_by
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


def _state(user: str = "u1") -> JourneyState:
    """A user's state with containers of its own, as the journey step gives a writer (these
    tests call the writers directly, not through the step)."""
    state = JourneyState(user=user)
    own_containers(state)
    return state


def test_segments_change_once_and_unchanged_inputs_decide_nothing() -> None:
    state = _state()
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
    state = _state()
    assert evaluate_segments(state, CFG, 0, "time", None, None, []) == (False, None)


def test_a_session_closing_with_a_full_cart_fires_cart_abandonment() -> None:
    state = _state()
    _apply(state, event("add_to_cart", ts=at(0)))
    (session,) = sessions.pop_closed(state.sessions, CFG.sessions, None)
    summary = sessions.summarise(session, state.user)
    profile_events.close_session(state.profile, CFG.profiles, session.start_ms, session.end_ms, summary.converted)
    out: list = []
    session_triggers(state, CFG, session, summary, out)
    assert [t.rule for t in out] == ["cart_abandonment"]
    assert out[0].ts_ms == session.end_ms + CFG.sessions.gap_ms


def test_event_triggers_read_the_event_and_its_product() -> None:
    state = _state()
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


def _close_all(state: JourneyState) -> None:
    for session in sessions.pop_closed(state.sessions, CFG.sessions, None):
        summary = sessions.summarise(session, state.user)
        profile_events.close_session(state.profile, CFG.profiles, session.start_ms, session.end_ms, summary.converted)


def test_a_close_changes_only_the_variables_of_session_starts_and_closes() -> None:
    # What evaluate_segments(closes_since=True) reads again: any other variable must read
    # the same before and after a close (a new variable over sessions must say so).
    state = _state()
    _apply(state, event("purchase", ts=at(0), order_id="o1", revenue=20.0))
    _apply(state, event("product_view", ts=at(3), product_id="p1", category="c", price=5.0))
    _apply(state, event("add_to_cart", ts=at(6), product_id="p1", price=5.0))
    now_ms = state.max_ts_ms + 3 * 3_600_000
    before = {name: entry.get(view_of(state, CFG, now_ms)) for name, entry in PROFILE.items()}
    _close_all(state)
    after = {name: entry.get(view_of(state, CFG, now_ms)) for name, entry in PROFILE.items()}
    moved = {name for name in PROFILE if before[name] != after[name]}
    assert "avg_session_s" in moved  # (the close is seen at all)
    assert moved <= {name for name in PROFILE if changed_by((name,)) & {SESSION_START, SESSION_CLOSE}}


def test_after_closes_only_the_inputs_a_close_changes_are_read_again_with_the_same_decision() -> None:
    rules = parse_rules(
        {"segments": {"long": {"when": "avg_session_s > 60.0"}, "browsing": {"when": "purchases_total == 0 && sessions_30d >= 1"}}}
    )
    cfg = journey_config(SETTINGS, rules, timers=False)
    assert [cfg.segments.variables[i] for i in cfg.segments.session_positions] == ["avg_session_s", "sessions_30d"]
    decided = []
    for closes_since in (False, True):
        state = _state()
        _apply(state, event("page_view", ts=at(0)))
        _apply(state, event("page_view", ts=at(5)))
        now_ms = state.max_ts_ms + 3_600_000
        _, inputs = evaluate_segments(state, cfg, now_ms, "time", None, None, [])
        assert "long" not in state.segments
        _close_all(state)
        out: list = []
        changed, after = evaluate_segments(state, cfg, now_ms, "session_close", None, inputs, out, closes_since)
        assert changed and "long" in state.segments  # the close made the session's length known
        decided.append((after, state.segments, [(u.cause, u.segments, u.values) for u in out]))
    assert decided[0] == decided[1]


def test_an_event_rule_is_decided_from_what_its_condition_reads_then_fired_with_everything() -> None:
    # The condition reads a profile variable, a local and the event map; the payload
    # reads more of each. Judged from the condition's values first, it must fire as
    # when every value was read (and a condition failing at run time is counted once).
    doc = {
        "triggers": {
            "mixed": {
                "on": "event",
                "event_types": ["product_view"],
                "when": "events_total >= 2 && product_views >= 2 && event.category == 'shoes'",
                "payload": {"cat": "event.category", "views": "product_views", "bought": "product_bought",
                            "seen": "events_total", "value": "cart_value"},
            },
            "broken": {"on": "event", "event_types": ["product_view"], "when": "1 / (product_views - 2) > 5"},
        }
    }
    cfg = journey_config(SETTINGS, parse_rules(doc), timers=False)
    state = _state()
    fired: list = []
    for minute, category in enumerate(("shoes", "hats", "shoes")):
        parsed = _apply(state, event("product_view", ts=at(minute), product_id="sku-1", category=category))
        event_triggers(state, cfg, parsed, fired)
    assert [t.rule for t in fired] == ["mixed"]
    assert fired[0].payload == {"cat": "shoes", "views": 3, "bought": False, "seen": 3, "value": 0.0}
    assert cfg.triggers.failed == {"broken"}


def test_a_session_rule_is_decided_from_what_its_condition_reads_then_fired_with_everything() -> None:
    doc = {
        "triggers": {
            "long": {
                "on": "session_close",
                "when": "events_total >= 2 && session.events >= 2",
                "payload": {"events": "session.events", "value": "cart_value", "abandoned": "session.abandoned"},
            },
        }
    }
    cfg = journey_config(SETTINGS, parse_rules(doc), timers=False)
    fired: list = []
    for n_events in (1, 3):
        state = _state()
        for minute in range(n_events):
            _apply(state, event("add_to_cart", ts=at(minute), product_id="sku-1", price=2.5))
        (session,) = sessions.pop_closed(state.sessions, cfg.sessions, None)
        summary = sessions.summarise(session, state.user)
        profile_events.close_session(state.profile, cfg.profiles, session.start_ms, session.end_ms, summary.converted)
        session_triggers(state, cfg, session, summary, fired)
    (trigger,) = fired
    assert trigger.rule == "long" and trigger.payload == {"events": 3, "value": 7.5, "abandoned": ["sku-1"]}


def test_users_deciding_the_same_segments_share_one_tuple() -> None:
    states = [_state("u1"), _state("u2")]
    for state in states:
        first = _apply(state, event("page_view", ts=at(0)))
        out: list = []
        assert evaluate_segments(state, CFG, first.ts_ms, "event", first.event_id, None, out)[0]
    assert "new_visitor" in states[0].segments
    assert states[0].segments is states[1].segments
