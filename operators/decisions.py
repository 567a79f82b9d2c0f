"""Rules in the per-user step: event triggers, session-close triggers, profile segments.

Each reads the profile through a :class:`~operators.profiles.View` as of the
moment it judges (the user's latest event time, a session's close, a tick),
and only the variables its rules read (:mod:`operators.variables`).
"""

from __future__ import annotations

from typing import Any

from journeyflow.events import Event
from journeyflow.records import SessionSummary
from operators import segments, triggers, updates, variables
from operators.expressions import evaluate_safely
from operators.journey_state import NO_COOLDOWNS, JourneyConfig, JourneyState, view_of
from operators.profiles import View
from operators.rule_types import TriggerRule
from operators.sessions import Session
from operators.variables import EVENT_LOCALS, EventScope, SessionScope

__all__ = ["event_triggers", "session_triggers", "evaluate_segments"]


def _writable(state: JourneyState) -> dict[str, int]:
    """Return ``state``'s cooldowns, or a new dict where it shares the empty one (kept by the
    caller once a firing writes into it: :data:`~operators.journey_state.NO_COOLDOWNS`)."""
    return {} if state.cooldowns is NO_COOLDOWNS else state.cooldowns


def event_triggers(state: JourneyState, cfg: JourneyConfig, event: Event, out: list[Any]) -> None:
    """Fire the event rules ``event`` matches, as of the user's latest event time."""
    rules = cfg.event_rules.get(event.type, cfg.any_event_rules)
    if not rules:
        return
    view = view_of(state, cfg, state.max_ts_ms or 0)
    scope = EventScope(view, event)
    cooldowns = _writable(state)
    failed = cfg.triggers.failed
    for rule in rules:
        # The condition first, from what it reads alone: most events fail it (a product
        # view under its threshold), and then the rest would be read for nothing. It reads
        # the same values as from all of them (fire() decides again when it holds).
        if evaluate_safely(rule.name, rule.when, _condition_values(rule, view, scope, "event", event), failed) is not True:
            continue
        values = variables.values(view, rule.profile_variables)
        if "event" in rule.variables:
            values["event"] = variables.fields_of(event, rule.map_fields("event"))
        for name, entry in EVENT_LOCALS.items():
            values[name] = entry.get(scope)
        fired = triggers.fire(
            cfg.triggers,
            rule,
            user=state.user,
            ts_ms=event.ts_ms,
            cause=event.event_id,
            cause_event_id=event.event_id,
            values=values,
            cooldowns=cooldowns,
        )
        if fired is not None:
            out.append(fired)
    if cooldowns:
        state.cooldowns = cooldowns


def _condition_values(
    rule: TriggerRule, view: View, scope: EventScope | SessionScope, map_name: str, map_scope: Any
) -> dict[str, Any]:
    """Return what a rule's condition reads, as its caller gives it to the whole rule:
    profile variables, the event's locals (``scope`` an :class:`EventScope`), and the map
    ``map_name`` (``event`` or ``session``) read from ``map_scope``."""
    values: dict[str, Any] = {}
    profile, locals_ = variables.PROFILE, EVENT_LOCALS
    for name in rule.when.variables:
        if name in profile:
            values[name] = profile[name].get(view)
        elif name == map_name:
            values[name] = variables.fields_of(map_scope, rule.map_fields(map_name))
        elif name in locals_ and isinstance(scope, EventScope):
            values[name] = locals_[name].get(scope)
    return values


def session_triggers(
    state: JourneyState, cfg: JourneyConfig, session: Session, summary: SessionSummary, out: list[Any]
) -> None:
    """Fire the session-close rules on ``session`` (closed and applied to the profile)."""
    profile = state.profile
    assert profile is not None
    closed_at = session.end_ms + cfg.sessions.gap_ms
    view = view_of(state, cfg, closed_at)
    scope = SessionScope(session, summary.session_id, profile)
    cooldowns = _writable(state)
    failed = cfg.triggers.failed
    for rule in cfg.session_triggers:
        # The condition first, as for event rules (most sessions close with nothing abandoned).
        if evaluate_safely(rule.name, rule.when, _condition_values(rule, view, scope, "session", scope), failed) is not True:
            continue
        values = variables.values(view, rule.profile_variables)
        values["session"] = variables.fields_of(scope, rule.map_fields("session"))
        fired = triggers.fire(
            cfg.triggers,
            rule,
            user=state.user,
            ts_ms=closed_at,
            cause=summary.session_id,
            cause_event_id=session.last_event_id or None,
            values=values,
            cooldowns=cooldowns,
        )
        if fired is not None:
            out.append(fired)
    if cooldowns:
        state.cooldowns = cooldowns


def evaluate_segments(
    state: JourneyState,
    cfg: JourneyConfig,
    now_ms: int,
    cause: str,
    cause_event_id: str | None,
    last_inputs: tuple[Any, ...] | None,
    out: list[Any],
    closes_since: bool = False,
) -> tuple[bool, tuple[Any, ...] | None]:
    """Re-decide the profile segments as of ``now_ms``; send an update on change.

    ``last_inputs`` are the rules' inputs at the last evaluation (None: unknown,
    every rule is evaluated). With ``closes_since``, they were read as of
    ``now_ms`` too and only sessions closed since: only the inputs a close can
    change are read again. Returns whether the segments changed, and the
    inputs to remember.
    """
    if state.profile is None:
        return False, last_inputs
    if now_ms > state.evaluated_ms:
        state.evaluated_ms = now_ms
    if not cfg.segments.rules:
        return False, last_inputs
    view = view_of(state, cfg, now_ms)
    if closes_since and last_inputs is not None:
        read = list(last_inputs)
        getters = cfg.segment_getters
        for i in cfg.segments.session_positions:
            read[i] = getters[i](view)
        inputs = tuple(read)
    else:
        inputs = tuple([get(view) for get in cfg.segment_getters])
    if inputs == last_inputs:
        # What segments.evaluate would find first, before the set of current members is made.
        return False, inputs
    current = frozenset(state.segments)
    members = segments.evaluate(cfg.segments, inputs, current, last_inputs)
    if members is current:
        return False, inputs
    state.segments = cfg.segments.shared_names(tuple(sorted(members)))
    out.append(updates.update(state, cfg, now_ms, "update", cause, cause_event_id, view, inputs=inputs))
    return True, inputs
