"""The per-user step: everything journeyflow does for one user, in one keyed step.

They share one step on purpose: each keyed step is a hop that costs about 3
microseconds per item whatever its logic (``shared/notes/bytewax-0.21.md``),
and all of them share the user as key. :class:`JourneyLogic` composes parts,
each in its own module with its own state in :class:`JourneyState`:
the user's clock and lateness (here), what time and the end of input change
(:mod:`~operators.journey_time`), :mod:`~operators.dedup`,
:mod:`~operators.sessions`, :mod:`~operators.profiles`, labels and scores
(:mod:`~operators.model_asks`), rules (:mod:`~operators.decisions`),
consent and erasure (:mod:`~operators.privacy`), identity hand-off
(:mod:`~operators.handoff`); :mod:`~operators.due` says when time next
changes something, :mod:`~operators.updates` builds what the step emits.

Per event, in order: parse (when the transport delivered raw bytes), erasure
and consent, deduplication, lateness; then, if the event moves the user's
clock forward, what time alone changes (sessions the gap closed, segments
over time windows); then the event itself: session, profile, event triggers,
segments.

Guarantees: events up to the allowed lateness behind the user's latest event
time are applied as if in order, older ones are dead letters ``late``
(:mod:`~operators.clock`); consent and erasure as :mod:`~operators.privacy`
says; at the end of input (bytewax EOF) open sessions close and segments are
judged at the latest time the user heard (a replay's last tick); live, timers
close sessions and refresh time-driven segments when the user's clock says so.
Memory is bounded per user by each part's caps and windows; a user with no
profile and nothing pending is discarded after reporting its
:class:`~journeyflow.step_records.Tally`, and with ``idle_release_ms`` a user idle
that long gets what the end of input gives (a final row) and is discarded too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from bytewax.operators import StatefulLogic

from journeyflow import metrics
from journeyflow.events import SESSION_EXCLUDED_TYPES, DeadLetter, Event
from journeyflow.step_records import Handoff, RawRecord, Tick
from operators import clock, dedup, goals, handoff, journey_time, model_asks, privacy, profile_events, profiles, recommend, sessions, updates, variables
from operators.decisions import evaluate_segments, event_triggers
from operators.due import next_due_ms
from operators.journey_state import NO_SESSIONS, Inbound, JourneyConfig, JourneyState, system_now_ms
from operators.model_asks import ModelAsks, flush
from state.serde import encode_state

__all__ = ["JourneyConfig", "JourneyState", "JourneyLogic", "Inbound", "system_now_ms"]

#: ``JourneyLogic._judged_ms`` when the segments were not judged since the last change
#: (no time is negative: an event's and a tick's time are from 1970 on).
_NOT_JUDGED: Final = -1

#: Event types that change what the profile's store row shows in a way worth a write.
_ROW_EVENTS: Final = frozenset({"purchase", "add_to_cart", "remove_from_cart", "checkout_start", "identify", "login"})

# What every item reads from modules that are not compiled, held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each; three or four an item).
_TICK: Final = Tick
_HANDOFF: Final = Handoff
_RAW: Final = RawRecord
_DEAD: Final = DeadLetter
_NOT_SESSIONED: Final = SESSION_EXCLUDED_TYPES
_RETAIN: Final = StatefulLogic.RETAIN
_DISCARD: Final = StatefulLogic.DISCARD


class JourneyLogic(StatefulLogic[Inbound, Any, bytes]):
    """Run the per-user parts for one user; see the module docstring."""

    def __init__(self, cfg: JourneyConfig, state: JourneyState) -> None:
        self.cfg = cfg
        self.state = state
        # Inputs of the last segment evaluation. Not in the snapshot: after a
        # restart every rule is evaluated once more, with the same result.
        self._segment_inputs: tuple[Any, ...] | None = None
        # When the segments were last judged, while nothing they read has
        # changed since (_NOT_JUDGED: something has): judging them again as of the
        # same time would read the same inputs and decide the same. A native int, not
        # int | None: every customer holds one at a replay's peak (a boxed time is 32 bytes).
        self._judged_ms = _NOT_JUDGED
        # Latest time a replay's tick told (EOF finishes the user as of then).
        self._heard_ms = 0
        # Whether the profile's last prune came after every item applied to it (so the
        # same prune again changes nothing). Not in the snapshot: after a restart, False.
        self.pruned_after_items = False
        # Wall clock of the last timer (live worker), see notify_at.
        self._notified_ms = 0
        # What the item being handled asks of the models (sent by flush).
        self.asks = ModelAsks()

    # -- bytewax callbacks -------------------------------------------------

    def on_item(self, value: Inbound) -> tuple[Iterable[Any], bool]:
        if isinstance(value, _TICK):
            ticked: list[Any] = []
            self._heard_ms = max(self._heard_ms, value.ts_ms)
            due_ms = next_due_ms(self.state, self.cfg)
            # Most ticks reach users with nothing due: they cost this test alone.
            if due_ms is not None and value.ts_ms >= due_ms:
                # Only a replay's last tick keeps a placed score's rows: the end of input follows
                # as of the same time and reuses them; after any other tick nothing would.
                journey_time.time_passes(self, value.ts_ms, ticked, keep_placed=value.last)
            return ticked, self._retain(ticked)
        out: list[Any] = []
        if isinstance(value, _HANDOFF):
            login_ms, max_ts = value.event.ts_ms, self.state.max_ts_ms
            if max_ts is not None and login_ms > max_ts and not self.state.opted_out:
                # The customer's own time up to the login passes first: what the merge
                # changes is then judged as the login's (cause "event"), not as time's.
                self._advance(login_ms, out)
            replaced, score = handoff.merge_in(self.state, self.cfg, value, out)
            if replaced is not None:
                self.replace_state(replaced)
            elif score is not None:
                # Segments and scores are decided anew on the merged profile.
                self._segment_inputs = None
                self.asks.score = score
            event = value.event
        elif isinstance(value, _RAW):
            parsed = self.cfg.parser.parse(value.data, value.source, value.key)
            if isinstance(parsed, _DEAD):
                dead: list[Any] = [parsed]
                return dead, self._retain(dead)
            event = parsed
        else:
            event = value
        if event.type == "forget":
            self.replace_state(privacy.forget(self.state, self.cfg, event, out))
        else:
            self._on_event(event, out)
            flush(self.asks, self.state, self.cfg, out)
        # Not trusted later: the item may change what segments and scores read after
        # judging and scoring them, and what a prune before it would have pruned.
        self._judged_ms = _NOT_JUDGED
        self.asks.placed = None
        self.pruned_after_items = False
        return out, self._retain(out)

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        now_ms = self.cfg.now_ms()
        self._notified_ms = now_ms
        if self.state.max_ts_ms is not None:
            journey_time.time_passes(self, now_ms - self.state.offset_ms, out)
        return out, self._retain(out)

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.state.max_ts_ms is None:
            out: list[Any] = updates.tallies(self.state)
            return out, self._retain(out)
        return journey_time.finish(self, max(self.state.max_ts_ms, self._heard_ms)), _RETAIN

    def notify_at(self) -> datetime | None:
        return clock.timer_at(self.state, self.cfg, self._notified_ms)

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def hand_off(self, event: Event) -> tuple[JourneyState, list[Any]]:
        """Give up this device's state to the customer ``event`` links it to (:mod:`operators.handoff`)."""
        return handoff.hand_off(self.state, self.cfg, event)

    # -- per event ---------------------------------------------------------

    def _on_event(self, event: Event, out: list[Any]) -> None:
        state = self.state
        cfg = self.cfg
        if not state.user:
            state.user = event.user
        if privacy.skips_erased_device(state, cfg, event):
            return
        if event.consent_personalization is not None:
            refused = privacy.on_consent(state, cfg, event, out)
            if refused is not None:
                self.replace_state(refused)
                state = refused
        if state.opted_out:
            state.processed += 1
            state.skipped += 1
            return
        id_key = dedup.id_key(event.event_id)
        if dedup.is_duplicate(state.dedup, id_key):
            state.duplicates += 1
            metrics.DUPLICATES.inc()
            return
        ts = event.ts_ms
        max_ts = state.max_ts_ms
        if clock.is_late(state, cfg, ts):
            out.append(clock.late_letter(cfg, event, max_ts))  # type: ignore[arg-type]
            return
        dedup.remember(state.dedup, cfg.dedup, id_key, ts)
        state.processed += 1
        if max_ts is None or ts > max_ts:
            self._advance(ts, out)
        if event.type in cfg.goal_types:
            # After the triggers the gap closed: the loop step sees them first.
            out.append(goals.goal_event(event))
        if event.type in _NOT_SESSIONED:
            if state.profile is not None and event.consent_marketing is not None:
                state.profile.marketing_consent = event.consent_marketing
            return
        if state.sessions is NO_SESSIONS:
            state.sessions = []  # the user's own (journey_state.NO_SESSIONS is shared)
        started = sessions.add_event(state.sessions, cfg.sessions, event)
        if state.profile is None:
            state.profile = profiles.new_profile(ts)
            state.evaluated_ms = state.snapshot_ms = state.scored_ms = ts
        profile = state.profile
        profile_events.apply_event(profile, cfg.profiles, event)
        if cfg.recommend is not None:
            ask, state.recent = recommend.observe(cfg.recommend, state.recent, event, profile.cart, profile.bought)
            if ask is not None:
                out.append(ask)
        model_asks.on_event(self.asks, state, cfg, event)
        event_triggers(state, cfg, event, out)
        segments_cfg = cfg.segments
        changed = False
        if (
            segments_cfg.reacts_to(event.type)
            or (started and segments_cfg.reacts_to(variables.SESSION_START))
            or self._segment_inputs is None
        ):
            changed = self.evaluate(state.max_ts_ms, "event", event.event_id, out)  # type: ignore[arg-type]
        # A user who only browses has no other reason for a row than new segments.
        if cfg.store_rows and (changed or event.type in _ROW_EVENTS):
            out.append(updates.row(state, cfg, state.max_ts_ms))  # type: ignore[arg-type]

    def replace_state(self, state: JourneyState) -> None:
        """Drop the user's state for ``state`` (a refusal, an erasure, a release)."""
        self.state = state
        self._segment_inputs = None
        self._judged_ms = _NOT_JUDGED
        self.pruned_after_items = False
        self.asks.clear()

    # -- time --------------------------------------------------------------

    def _advance(self, ts: int, out: list[Any]) -> None:
        """Move the user's clock to ``ts`` and apply what time alone changes."""
        clock.advance(self.state, self.cfg, ts)
        # Judged before this event is applied: what the gap ended, and what
        # changed while the user was away, happened first.
        journey_time.catch_up(self, ts, ts - self.cfg.lateness_ms, out)

    def evaluate(
        self, now_ms: int, cause: str, cause_event_id: str | None, out: list[Any], closes_since: bool = False
    ) -> bool:
        """Re-decide the profile segments as of ``now_ms``; send an update and return True on change.

        ``closes_since``: the last judgement was as of ``now_ms`` too, and only sessions
        closed since (see :func:`~operators.decisions.evaluate_segments`).
        """
        changed, self._segment_inputs = evaluate_segments(
            self.state, self.cfg, now_ms, cause, cause_event_id, self._segment_inputs, out, closes_since
        )
        self._judged_ms = now_ms
        return changed

    # -- what the parts use (operators/journey_time.py) -------------------
    # Besides the public working fields (asks, pruned_after_items), evaluate()
    # and replace_state(): the parts never touch the private ones.

    @property
    def judged_ms(self) -> int | None:
        """When the segments were last judged, if nothing they read has changed since (else None)."""
        judged = self._judged_ms
        return None if judged == _NOT_JUDGED else judged

    def judged_inputs(self) -> tuple[int, tuple[Any, ...]] | None:
        """Return when the segments were last judged and the inputs read then, if nothing they
        read has changed since (else None): a fresh read as of that time gives the same values."""
        inputs = self._segment_inputs
        if self._judged_ms == _NOT_JUDGED or inputs is None:
            return None
        return self._judged_ms, inputs

    def segments_stale(self) -> None:
        """Note that the profile or the open sessions changed since the segments were last judged.

        (Then the last placed score's rows are stale too: they read the same.)
        """
        self._judged_ms = _NOT_JUDGED
        self.asks.placed = None

    def _retain(self, out: list[Any]) -> bool:
        """Drop a user with nothing left to remember, after reporting its counts."""
        state = self.state
        if state.profile is not None or state.sessions or state.dedup.ids or state.opted_out or state.erased_devices:
            return _RETAIN
        out.extend(updates.tallies(state))
        return _DISCARD
