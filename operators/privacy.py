"""Consent and erasure in the per-user step: what a user's choices drop and keep.

* A refusal of personalization drops every piece of the user's state but the
  refusal itself, the counts, and the links to their devices (a refusal on
  any device is the customer's); an ``opt_out`` update tells the steps after.
* A ``forget`` event drops everything and sends an ``erase`` update naming
  the linked devices; the refusal (if any) and the devices' salted hashes
  are kept, so the devices' later events are not the customer's again until
  the device logs in again.

Each function returns the state that replaces the user's when it drops it.
"""

from __future__ import annotations

from typing import Any

from journeyflow.events import IDENTITY_TYPES, Event
from operators import updates
from operators.journey_state import MAX_DEVICES, JourneyConfig, JourneyState

__all__ = ["skips_erased_device", "on_consent", "forget", "released"]


def skips_erased_device(state: JourneyState, cfg: JourneyConfig, event: Event) -> bool:
    """Return whether ``event`` comes from a device of an erased customer (counted as skipped).

    A login on such a device makes it the customer's anew.
    """
    if not state.erased_devices or event.anonymous_id is None:
        return False
    hashed = cfg.parser.hash_personal(event.anonymous_id)
    if hashed not in state.erased_devices:
        return False
    if event.user_id is None:
        state.processed += 1
        state.skipped += 1
        return True
    if event.type in IDENTITY_TYPES:
        state.erased_devices = tuple(d for d in state.erased_devices if d != hashed)
    return False


def on_consent(state: JourneyState, cfg: JourneyConfig, event: Event, out: list[Any]) -> JourneyState | None:
    """Apply the event's personalization consent; return the state after a refusal, else None."""
    if event.consent_personalization:
        state.opted_out = False
        return None
    if state.opted_out:
        return None
    if state.profile is not None or state.segments:
        out.append(updates.update(state, cfg, event.ts_ms, "opt_out", "consent", event.event_id))
    out.extend(updates.tallies(state))
    return JourneyState(user=state.user, opted_out=True, devices=state.devices, erased_devices=state.erased_devices)


def forget(state: JourneyState, cfg: JourneyConfig, event: Event, out: list[Any]) -> JourneyState:
    """Erase the user (a ``forget`` event); return what is kept of it."""
    state.user = state.user or event.user
    state.processed += 1
    out.append(updates.update(state, cfg, event.ts_ms, "erase", "forget", event.event_id, aliases=state.devices))
    out.extend(updates.tallies(state))
    hashed = tuple(cfg.parser.hash_personal(d) for d in state.devices)
    erased = (*state.erased_devices, *hashed)[-MAX_DEVICES:]
    return JourneyState(user=state.user, opted_out=state.opted_out, erased_devices=erased)


def released(state: JourneyState) -> JourneyState:
    """Return what an idle user's release keeps: a refusal, and an erased customer's devices."""
    return JourneyState(user=state.user, opted_out=state.opted_out, erased_devices=state.erased_devices)
