"""The per-user step: everything journeyflow does for one user, in one keyed step.

Every per-user concern lives in its own module as plain state and functions
(:mod:`operators.dedup`, :mod:`operators.sessions`, ...); this module strings
them together behind one bytewax ``StatefulLogic``. They share one step on
purpose: each keyed step is a hop that costs about 3 microseconds per item
whatever its logic (``shared/notes/bytewax-0.21.md``), and all of them share
the user as key.

Per event, in order: parse (when the transport delivered raw bytes), consent
and erasure, deduplication, lateness, then sessions. Guarantees:

* Ordering: events up to ``lateness`` behind the user's latest event time are
  applied as if they had arrived in order; older ones are dead letters with
  code ``late`` (they keep their raw text and can be replayed).
* End of input (a replay's :class:`EndOfInput`, or bytewax EOF): open sessions
  close and time-driven state is judged at the replay's last event time.
* Timers (live worker only): a session closes when, by the user's clock, its
  gap and the lateness have passed; event time is mapped to system time with
  the offset seen at the user's latest event, so replayed history sent through
  Kafka does not close sessions early.
* Memory: see each module; a user with nothing left (no open session, no
  remembered ids) is discarded after emitting its :class:`Tally`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bytewax.operators import StatefulLogic

from journeyflow.events import SESSION_EXCLUDED_TYPES, DeadLetter, Event, EventParser, format_ts
from journeyflow.records import EndOfInput, RawRecord, Tally
from operators import dedup, sessions
from operators.dedup import DedupConfig, DedupState
from operators.sessions import Session, SessionConfig
from state.serde import decode_state, encode_state

__all__ = ["JourneyConfig", "JourneyState", "JourneyLogic", "Inbound", "system_now_ms"]

Inbound = Event | RawRecord | EndOfInput
"""What the step accepts: parsed events (replay), raw messages (Kafka), end of input."""


def system_now_ms() -> int:
    """Return the wall clock in epoch milliseconds."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


@dataclass(frozen=True)
class JourneyConfig:
    """Settings of the per-user step (built once by the flow from the settings)."""

    parser: EventParser
    dedup: DedupConfig
    sessions: SessionConfig
    timers: bool = False
    """Schedule bytewax timers (live worker). Replays rely on event time only."""
    now_ms: Callable[[], int] = system_now_ms

    @property
    def lateness_ms(self) -> int:
        return self.sessions.lateness_ms

    def build(self, resume_state: bytes | None) -> JourneyLogic:
        """Return the logic for one user, from its snapshot if there is one."""
        state = JourneyState() if resume_state is None else decode_state(resume_state, JourneyState)
        return JourneyLogic(self, state)


@dataclass(slots=True)
class JourneyState:
    """All that journeyflow keeps about one user."""

    version: int = 1
    user: str = ""
    max_ts_ms: int | None = None
    """Latest event time seen; the watermark is this minus the allowed lateness."""
    offset_ms: int = 0
    """System time minus event time when ``max_ts_ms`` last advanced (timers)."""
    dedup: DedupState = field(default_factory=DedupState)
    sessions: list[Session] = field(default_factory=list)
    opted_out: bool = False
    processed: int = 0
    duplicates: int = 0
    skipped: int = 0


class JourneyLogic(StatefulLogic[Inbound, Any, bytes]):
    """Run the per-user concerns for one user; see the module docstring."""

    def __init__(self, cfg: JourneyConfig, state: JourneyState) -> None:
        self.cfg = cfg
        self.state = state

    # -- bytewax callbacks -------------------------------------------------

    def on_item(self, value: Inbound) -> tuple[Iterable[Any], bool]:
        if isinstance(value, EndOfInput):
            return self._finish(value.ts_ms), StatefulLogic.RETAIN
        if isinstance(value, RawRecord):
            parsed = self.cfg.parser.parse(value.data, value.source, value.key)
            if isinstance(parsed, DeadLetter):
                return [parsed], self._is_empty()
            value = parsed
        out: list[Any] = []
        self._on_event(value, out)
        return out, self._discard_if_idle(out)

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        state = self.state
        if state.max_ts_ms is None:
            return [], self._discard_if_idle([])
        now_event_ms = self.cfg.now_ms() - state.offset_ms
        out: list[Any] = []
        self._close_sessions(now_event_ms - self.cfg.lateness_ms, out)
        dedup.expire(state.dedup, self.cfg.dedup, now_event_ms)
        return out, self._discard_if_idle(out)

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.state.max_ts_ms is None:
            return [], self._is_empty()
        return self._finish(self.state.max_ts_ms), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.cfg.timers:
            return None
        due = sessions.next_close_ms(self.state.sessions, self.cfg.sessions)
        if self.state.dedup.seen:
            oldest = next(iter(self.state.dedup.seen.values()))
            expiry = oldest + self.cfg.dedup.window_ms + 1
            due = expiry if due is None else min(due, expiry)
        if due is None:
            return None
        return datetime.fromtimestamp((due + self.state.offset_ms) / 1000, timezone.utc)

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    # -- per event ---------------------------------------------------------

    def _on_event(self, event: Event, out: list[Any]) -> None:
        state = self.state
        if not state.user:
            state.user = event.user
        if event.consent_personalization is not None:
            self._on_consent(event.consent_personalization, out)
        if state.opted_out:
            state.processed += 1
            state.skipped += 1
            return
        if dedup.is_duplicate(state.dedup, event.event_id):
            state.duplicates += 1
            return
        ts = event.ts_ms
        max_ts = state.max_ts_ms
        if max_ts is not None and ts < max_ts - self.cfg.lateness_ms:
            out.append(self._late(event, max_ts))
            return
        dedup.remember(state.dedup, self.cfg.dedup, event.event_id, ts)
        state.processed += 1
        if max_ts is None or ts > max_ts:
            state.max_ts_ms = ts
            state.offset_ms = self.cfg.now_ms() - ts if self.cfg.timers else 0
            dedup.expire(state.dedup, self.cfg.dedup, ts)
            # Close before applying this event: what the gap ended happened first.
            self._close_sessions(ts - self.cfg.lateness_ms, out)
        if event.type not in SESSION_EXCLUDED_TYPES:
            sessions.add_event(state.sessions, self.cfg.sessions, event)

    def _on_consent(self, personalization: bool, out: list[Any]) -> None:
        state = self.state
        if personalization:
            state.opted_out = False
            return
        if not state.opted_out:
            # Their state is dropped: nothing of the user is kept but the refusal.
            state.dedup = DedupState()
            state.sessions = []
            state.max_ts_ms = None
            state.opted_out = True

    def _late(self, event: Event, max_ts: int) -> DeadLetter:
        behind_s = (max_ts - event.ts_ms) / 1000
        reason = (
            f"late: {behind_s:.0f}s behind the user's latest event at {format_ts(max_ts)} "
            f"(allowed {self.cfg.lateness_ms / 1000:.0f}s)"
        )
        return self.cfg.parser.dead_letter(event.raw, event.source, "late", reason)

    def _close_sessions(self, watermark_ms: int | None, out: list[Any]) -> None:
        for closed in sessions.pop_closed(self.state.sessions, self.cfg.sessions, watermark_ms):
            out.append(sessions.summarise(closed, self.state.user))

    def _finish(self, as_of_ms: int) -> list[Any]:
        """Close what the end of input closes and report the user's counts."""
        out: list[Any] = []
        self._close_sessions(None, out)
        dedup.expire(self.state.dedup, self.cfg.dedup, as_of_ms)
        out.append(self._tally())
        return out

    def _tally(self) -> Tally:
        state = self.state
        tally = Tally(state.user, state.processed, state.duplicates, state.skipped)
        state.processed = state.duplicates = state.skipped = 0
        return tally

    def _is_empty(self) -> bool:
        state = self.state
        return state.max_ts_ms is None and not state.opted_out and state.processed == 0

    def _discard_if_idle(self, out: list[Any]) -> bool:
        """Drop a user with nothing left to remember, after reporting its counts."""
        state = self.state
        if state.sessions or state.dedup.seen or state.opted_out:
            return StatefulLogic.RETAIN
        if state.processed or state.duplicates or state.skipped:
            out.append(self._tally())
        return StatefulLogic.DISCARD
