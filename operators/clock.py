"""The user's clock in the per-user step: event time, lateness, timers.

The clock is the latest event time the user's events reached
(``JourneyState.max_ts_ms``); the watermark is that minus the allowed
lateness, and events behind it are dead letters. Live, event time is mapped
to the wall clock with the offset seen when the clock last moved, so
replayed history sent through Kafka does not close sessions early.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Final

from journeyflow.events import DeadLetter, Event, format_ts
from operators.due import next_due_ms
from operators.journey_state import JourneyConfig, JourneyState

__all__ = ["is_late", "late_letter", "advance", "timer_at"]

#: A timer is never set sooner than this after the last one (milliseconds).
_TIMER_SPACING_MS: Final = 1000

# A live timer's clock, held as statics: compiled, a name imported from a module that is not
# compiled is looked up in this module's globals dict at every use (about 120 instructions each).
_DATETIME: Final = datetime
_UTC: Final = timezone.utc


def is_late(state: JourneyState, cfg: JourneyConfig, ts_ms: int) -> bool:
    """Return whether an event at ``ts_ms`` is behind the user's watermark."""
    max_ts = state.max_ts_ms
    return max_ts is not None and ts_ms < max_ts - cfg.lateness_ms


def late_letter(cfg: JourneyConfig, event: Event, max_ts: int) -> DeadLetter:
    """Return the dead letter (code ``late``) of an event behind the watermark."""
    behind_s = (max_ts - event.ts_ms) / 1000
    reason = (
        f"late: {behind_s:.0f}s behind the user's latest event at {format_ts(max_ts)} "
        f"(allowed {cfg.lateness_ms / 1000:.0f}s)"
    )
    return cfg.parser.dead_letter(event.raw, event.source, "late", reason)


def advance(state: JourneyState, cfg: JourneyConfig, ts_ms: int) -> None:
    """Move the user's clock to ``ts_ms`` (and, live, remember the wall clock's offset)."""
    state.max_ts_ms = ts_ms
    if cfg.timers:
        state.offset_ms = cfg.now_ms() - ts_ms


def timer_at(state: JourneyState, cfg: JourneyConfig, notified_ms: int) -> datetime | None:
    """Return when the user's next timer should fire (wall clock), or None.

    Never sooner than a second after the last timer (``notified_ms``):
    whatever is due then has been handled, so a due time in the past cannot
    spin the worker.
    """
    if not cfg.timers:
        return None
    due = next_due_ms(state, cfg)
    if due is None:
        return None
    due_ms = max(due + state.offset_ms, notified_ms + _TIMER_SPACING_MS)
    return _DATETIME.fromtimestamp(due_ms / 1000, _UTC)
