"""When time alone next changes something for a user: the per-user step's next due time.

A replay's tick, a live timer and the end of input all hand the per-user step
(:mod:`operators.journey`) the time; :func:`next_due_ms` says from which user
event time its catch-up has anything to do, so that a tick before then
returns at once and a timer is set for then. Each bound mirrors one test of
``operators.journey_time.catch_up`` (and the idle release):

* the first open session closes once the watermark passes its end + gap;
* the oldest remembered event id leaves the dedup window;
* the next labelled snapshot falls due on the epoch-aligned grid;
* the oldest pending snapshot's label interval ends;
* the profile's windows are pruned and its segments refreshed (``refresh_ms``);
* an idle user's scores are refreshed (``rescore_ms``);
* an idle user is released (``idle_release_ms``, when set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from operators.dedup import oldest_ms

if TYPE_CHECKING:
    from operators.journey_state import JourneyConfig, JourneyState

__all__ = ["next_due_ms"]


def next_due_ms(state: JourneyState, cfg: JourneyConfig) -> int | None:
    """Return the user event time from which the passing of time changes something.

    ``None``: nothing, however much time passes (no event seen, or nothing
    left that time can change). Before the returned time, a tick or timer
    changes neither the state nor the outputs.
    """
    if state.max_ts_ms is None:
        return None
    due: int | None = None
    if state.sessions:
        # The first open session ends first (open sessions never overlap).
        due = state.sessions[0].end_ms + cfg.sessions.gap_ms + cfg.lateness_ms + 1
    oldest = oldest_ms(state.dedup)
    if oldest is not None:
        # Ids are remembered in arrival order: expiry stops at the first one still in the window.
        expires = oldest + cfg.dedup.window_ms + 1
        due = expires if due is None else min(due, expires)
    profile = state.profile
    if profile is None:
        return due
    # The earliest of these, kept as we go (no list to build and take the min of: every tick asks).
    interval = cfg.labels.interval_ms
    soonest = (state.snapshot_ms // interval + 1) * interval
    candidate = profile.pruned_ms + cfg.refresh_ms
    if candidate < soonest:
        soonest = candidate
    candidate = state.evaluated_ms + cfg.refresh_ms
    if candidate < soonest:
        soonest = candidate
    candidate = state.scored_ms + cfg.rescore_ms
    if candidate < soonest:
        soonest = candidate
    if state.pending:
        candidate = state.pending[0].ts_ms + interval + 1
        if candidate < soonest:
            soonest = candidate
    if cfg.idle_release_ms:
        candidate = state.max_ts_ms + cfg.idle_release_ms
        if candidate < soonest:
            soonest = candidate
    if due is not None and due < soonest:
        soonest = due
    return soonest
