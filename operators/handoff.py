"""Identity hand-off in the per-user step: a device's state joins its customer's at a login.

The device step (:mod:`operators.identity`) asks the device's journey to
:func:`hand_off` its state, and sends it to the customer's key in a
:class:`~journeyflow.step_records.Handoff`; the customer's journey
:func:`merge_in` s it (see :mod:`operators.merge` for how each part joins).
"""

from __future__ import annotations

from typing import Any

from journeyflow.events import Event
from journeyflow.step_records import Handoff
from operators import merge, privacy, updates
from operators.journey_state import MAX_DEVICES, JourneyConfig, JourneyState, own_containers, share_empties
from operators.model_asks import ScoreAsk

__all__ = ["hand_off", "merge_in"]


def hand_off(state: JourneyState, cfg: JourneyConfig, event: Event) -> tuple[JourneyState, list[Any]]:
    """Give up this device's state to the customer ``event`` (a login) links it to.

    Returns the state to merge into the customer's and what the device says
    as it goes: its counts, and, if anything was decided about it, a
    ``merge`` update after which the steps downstream forget it too.
    """
    out: list[Any] = []
    if state.profile is not None or state.segments:
        out.append(updates.update(state, cfg, event.ts_ms, "merge", "merge", event.event_id))
    out.extend(updates.tallies(state))
    return state, out


def merge_in(
    state: JourneyState, cfg: JourneyConfig, handoff: Handoff, out: list[Any]
) -> tuple[JourneyState | None, ScoreAsk | None]:
    """Join a linked device's state into this customer's ``state``.

    Returns the state that replaces the customer's (a refusal given on the
    device is the customer's refusal) or None, and the score the merged
    profile needs (its segments are then decided anew) or None.
    """
    login: Event = handoff.event
    state.user = state.user or login.user
    device = handoff.anonymous_id
    state.devices = (*(d for d in state.devices if d != device), device)[-MAX_DEVICES:]
    other: JourneyState | None = handoff.state
    if other is None:
        return None, None
    if other.opted_out and not state.opted_out:
        return privacy.on_consent(state, cfg, login._replace(consent_personalization=False), out), None
    if state.opted_out:
        return None, None
    merge.merge_dedup(state.dedup, other.dedup, cfg.dedup)
    own_containers(state)  # (the merges write into them; the shared empties go back below)
    merge.merge_sessions(state.sessions, other.sessions, cfg.sessions)
    if other.profile is not None:
        if state.profile is None:
            state.profile = other.profile
            state.evaluated_ms, state.snapshot_ms = other.evaluated_ms, other.snapshot_ms
            state.scored_ms = other.scored_ms
        else:
            merge.merge_profile(state.profile, other.profile, cfg.profiles)
            state.snapshot_ms = max(state.snapshot_ms, other.snapshot_ms)
    merge.merge_pending(state.pending, other.pending)
    merge.merge_latest(state.cooldowns, other.cooldowns)
    share_empties(state)
    if other.max_ts_ms is not None and (state.max_ts_ms is None or other.max_ts_ms > state.max_ts_ms):
        state.max_ts_ms, state.offset_ms = other.max_ts_ms, other.offset_ms
    if other.recent and (not state.recent or other.recent[0][1] > state.recent[0][1]):
        state.recent = other.recent
    if state.profile is None:
        return None, None
    return None, ScoreAsk(state.max_ts_ms, "merge", login.event_id, True)  # type: ignore[arg-type]
