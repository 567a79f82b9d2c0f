"""The per-user step: everything journeyflow does for one user, in one keyed step.

Every per-user concern lives in its own module as plain state and functions
(:mod:`operators.dedup`, :mod:`operators.sessions`, :mod:`operators.profiles`,
:mod:`operators.segments`, :mod:`operators.triggers`); this module strings
them together behind one bytewax ``StatefulLogic``. They share one step on
purpose: each keyed step is a hop that costs about 3 microseconds per item
whatever its logic (``shared/notes/bytewax-0.21.md``), and all of them share
the user as key.

Per event, in order: parse (when the transport delivered raw bytes), erasure
and consent, deduplication, lateness; then, if the event moves the user's
clock forward, what time alone changes (sessions the gap closed, segments
over time windows); then the event itself: session, profile, event triggers,
segments.

Guarantees:

* Ordering: events up to the allowed lateness behind the user's latest event
  time are applied as if they had arrived in order; older ones are dead
  letters with code ``late`` (they keep their raw text and can be replayed).
* Consent: a user whose latest consent refuses personalization has every
  piece of state dropped and is neither profiled, sessionised, segmented nor
  triggered on until they consent again; only the refusal is kept.
* Erasure: a ``forget`` event drops all of the user's state and sends an
  erasure downstream (a tombstone is published and stores delete theirs).
* End of input (bytewax EOF, after every item): open sessions close, and
  segments are judged at the latest time the user heard (a replay's last
  tick is its last event time).
* Timers (live worker only): sessions close and time-driven segments are
  re-evaluated when, by the user's clock, their time comes. Event time is
  mapped to system time with the offset seen at the user's latest event, so
  replayed history sent through Kafka does not close sessions early.
* Memory: bounded per user by each module's caps and windows; a user with no
  profile and nothing pending is discarded after reporting its :class:`Tally`.
  With ``idle_release_ms``, a user idle that long (at a tick or timer) gets
  what the end of input gives (a final profile row) and is discarded too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bytewax.operators import StatefulLogic

from journeyflow import metrics
from journeyflow.event_parser import EventParser
from journeyflow.events import IDENTITY_TYPES, SESSION_EXCLUDED_TYPES, DeadLetter, Event, format_ts
from journeyflow.records import SNAPSHOT_FIELDS, ProfileRow
from journeyflow.step_records import Handoff, RawRecord, Tally, Tick, UserUpdate
from operators import dedup, features, goals, labels, merge, profiles, recommend, segments, sessions, triggers, variables
from operators.dedup import DedupConfig, DedupState
from operators.due import next_due_ms
from operators.labels import Example, LabelConfig, Pending
from operators.profiles import Profile, ProfileConfig, View
from operators.recommend import RecommendConfig
from operators.variables import EVENT_LOCALS, PROFILE, EventScope, SessionScope
from operators.views import to_fields
from operators.segments import SegmentConfig
from operators.sessions import Session, SessionConfig
from operators.rules import TriggerRule
from operators.triggers import TriggerConfig
from state.serde import decode_state, encode_state

__all__ = ["JourneyConfig", "JourneyState", "JourneyLogic", "Inbound", "system_now_ms"]

Inbound = Event | RawRecord | Tick | Handoff
"""What the step accepts: parsed events, raw messages, a replay's
announcements that time passed, and a device's state handed over at a login
(:mod:`operators.identity`)."""

#: Anonymous devices remembered per customer (for erasure of their aliases).
_MAX_DEVICES = 16

#: Event types after which the models score the user again: a purchase always,
#: cart changes at most once per _EVENT_RESCORE_MS (a cart filled item by item
#: needs one fresh score, not one per item).
_SCORE_EVENTS = frozenset({"purchase", "add_to_cart", "remove_from_cart", "checkout_start"})
_EVENT_RESCORE_MS = 10 * 60_000

#: Event types that change what the profile's store row shows in a way worth a write.
_ROW_EVENTS = frozenset({"purchase", "add_to_cart", "remove_from_cart", "checkout_start", "identify", "login"})


def system_now_ms() -> int:
    """Return the wall clock in epoch milliseconds."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


@dataclass(frozen=True)
class JourneyConfig:
    """Settings of the per-user step (built once by the flow from the settings)."""

    parser: EventParser
    dedup: DedupConfig
    sessions: SessionConfig
    profiles: ProfileConfig
    segments: SegmentConfig
    triggers: TriggerConfig
    refresh_ms: int
    """Time-driven segments are re-evaluated at least this often (event time)."""
    labels: LabelConfig
    rescore_ms: int
    """An idle user's scores are refreshed at least this often (event time)."""
    late_variables: tuple[str, ...] = ()
    """Profile variables the steps after this one need (see :class:`UserUpdate`)."""
    update_variables: tuple[str, ...] = field(init=False)
    """What updates carry: the contract's snapshot fields, ``late_variables`` and
    the variables of the segments decided here (a segment change shows why)."""
    timers: bool = False
    """Schedule bytewax timers (live worker). Replays rely on event time only."""
    store_rows: bool = False
    """Emit :class:`ProfileRow` updates for a profile store (Redis)."""
    now_ms: Callable[[], int] = system_now_ms
    goal_types: frozenset[str] = frozenset()
    """Event types some trigger's conversion goal counts: sent on to the loop step."""
    recommend: RecommendConfig | None = None
    """Ask the recommender about product events (``None``: it is off)."""
    idle_release_ms: int = 0
    """A user idle this long (event time) publishes its final row and is forgotten; 0: never."""

    event_triggers: tuple[TriggerRule, ...] = field(init=False)
    session_triggers: tuple[TriggerRule, ...] = field(init=False)
    segment_getters: tuple[Callable[[View], Any], ...] = field(init=False)

    def __post_init__(self) -> None:
        snapshot = tuple(n for n in SNAPSHOT_FIELDS if n in PROFILE)
        extra = tuple(dict.fromkeys(n for n in (*self.late_variables, *self.segments.variables) if n not in snapshot))
        object.__setattr__(self, "update_variables", snapshot + extra)
        object.__setattr__(self, "event_triggers", self.triggers.on("event"))
        object.__setattr__(self, "session_triggers", self.triggers.on("session_close"))
        object.__setattr__(self, "segment_getters", tuple(PROFILE[n].get for n in self.segments.variables))

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
    profile: Profile | None = None
    segments: frozenset[str] = frozenset()
    """Segments decided here (over the profile alone)."""
    evaluated_ms: int = 0
    """Event time of the last segment evaluation."""
    cooldowns: dict[str, int] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    """Past states waiting for their churn and propensity labels."""
    snapshot_ms: int = 0
    """Event time of the last labelled snapshot."""
    scored_ms: int = 0
    """Event time of the last score refresh."""
    opted_out: bool = False
    recent: tuple[tuple[str, int], ...] = ()
    """The recommender's view of the session: last products and times, latest first."""
    devices: tuple[str, ...] = ()
    """Anonymous ids linked to this customer, latest last (at most _MAX_DEVICES)."""
    erased_devices: tuple[str, ...] = ()
    """Salted hashes of the devices of an erased customer: their events are not applied
    (counted as skipped) until the device logs in again. Kept after the erasure."""
    processed: int = 0
    duplicates: int = 0
    skipped: int = 0


class JourneyLogic(StatefulLogic[Inbound, Any, bytes]):
    """Run the per-user concerns for one user; see the module docstring."""

    def __init__(self, cfg: JourneyConfig, state: JourneyState) -> None:
        self.cfg = cfg
        self.state = state
        # Inputs of the last segment evaluation. Not in the snapshot: after a
        # restart every rule is evaluated once more, with the same result.
        self._segment_inputs: tuple[Any, ...] | None = None
        # Latest time a replay's tick told (EOF finishes the user as of then).
        self._heard_ms = 0
        # Wall clock of the last timer (live worker), see notify_at.
        self._notified_ms = 0
        # What the item being handled asks of the models (see _flush).
        self._examples: list[Example] = []
        self._score: tuple[int, str, str | None, bool] | None = None

    # -- bytewax callbacks -------------------------------------------------

    def on_item(self, value: Inbound) -> tuple[Iterable[Any], bool]:
        if isinstance(value, Tick):
            ticked: list[Any] = []
            self._heard_ms = max(self._heard_ms, value.ts_ms)
            due_ms = next_due_ms(self.state, self.cfg)
            # Most ticks reach users with nothing due: they cost this test alone.
            if due_ms is not None and value.ts_ms >= due_ms:
                self._time_passes(value.ts_ms, ticked)
            return ticked, self._retain(ticked)
        out: list[Any] = []
        if isinstance(value, Handoff):
            self._merge_in(value, out)
            value = value.event
        elif isinstance(value, RawRecord):
            parsed = self.cfg.parser.parse(value.data, value.source, value.key)
            if isinstance(parsed, DeadLetter):
                dead: list[Any] = [parsed]
                return dead, self._retain(dead)
            value = parsed
        if value.type == "forget":
            self._forget(value, out)
        else:
            self._on_event(value, out)
            self._flush(out)
        return out, self._retain(out)

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        now_ms = self.cfg.now_ms()
        self._notified_ms = now_ms
        if self.state.max_ts_ms is not None:
            self._time_passes(now_ms - self.state.offset_ms, out)
        return out, self._retain(out)

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.state.max_ts_ms is None:
            out: list[Any] = self._tallies()
            return out, self._retain(out)
        return self._finish(max(self.state.max_ts_ms, self._heard_ms)), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.cfg.timers:
            return None
        due = next_due_ms(self.state, self.cfg)
        if due is None:
            return None
        # Never sooner than a second after the last timer: whatever is due then
        # has been handled, so a due time in the past cannot spin the worker.
        due_ms = max(due + self.state.offset_ms, self._notified_ms + 1000)
        return datetime.fromtimestamp(due_ms / 1000, timezone.utc)

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    # -- per event ---------------------------------------------------------

    def _on_event(self, event: Event, out: list[Any]) -> None:
        state = self.state
        if not state.user:
            state.user = event.user
        if state.erased_devices and event.anonymous_id is not None:
            hashed = self.cfg.parser.hash_personal(event.anonymous_id)
            if hashed in state.erased_devices:
                if event.user_id is None:
                    # A device of a customer who asked to be forgotten: not theirs any more.
                    state.processed += 1
                    state.skipped += 1
                    return
                if event.type in IDENTITY_TYPES:
                    # Logged in again on it: the device is the customer's anew.
                    state.erased_devices = tuple(d for d in state.erased_devices if d != hashed)
        if event.consent_personalization is not None:
            self._on_consent(event, out)
            state = self.state  # a refusal replaces the state
        if state.opted_out:
            state.processed += 1
            state.skipped += 1
            return
        if dedup.is_duplicate(state.dedup, event.event_id):
            state.duplicates += 1
            metrics.DUPLICATES.inc()
            return
        ts = event.ts_ms
        max_ts = state.max_ts_ms
        if max_ts is not None and ts < max_ts - self.cfg.lateness_ms:
            out.append(self._late(event, max_ts))
            return
        dedup.remember(state.dedup, self.cfg.dedup, event.event_id, ts)
        state.processed += 1
        if max_ts is None or ts > max_ts:
            self._advance(ts, out)
        if event.type in self.cfg.goal_types:
            # After the triggers the gap closed: the loop step sees them first.
            out.append(goals.goal_event(event))
        if event.type in SESSION_EXCLUDED_TYPES:
            if state.profile is not None and event.consent_marketing is not None:
                state.profile.marketing_consent = event.consent_marketing
            return
        started = sessions.add_event(state.sessions, self.cfg.sessions, event)
        if state.profile is None:
            state.profile = profiles.new_profile(ts)
            state.evaluated_ms = state.snapshot_ms = state.scored_ms = ts
        profiles.apply_event(state.profile, self.cfg.profiles, event)
        if self.cfg.recommend is not None:
            profile = state.profile
            ask, state.recent = recommend.observe(self.cfg.recommend, state.recent, event, profile.cart, profile.bought)
            if ask is not None:
                out.append(ask)
        if state.pending:
            done = labels.on_activity(state.pending, self.cfg.labels, ts, event.type == "purchase")
            self._examples.extend(done)
        if event.type in _SCORE_EVENTS and (
            event.type == "purchase" or ts - state.scored_ms >= _EVENT_RESCORE_MS
        ):
            self._score = (state.max_ts_ms, "event", event.event_id, False)  # type: ignore[assignment]
        self._event_triggers(event, out)
        segments_cfg = self.cfg.segments
        changed = False
        if (
            segments_cfg.reacts_to(event.type)
            or (started and segments_cfg.reacts_to(variables.SESSION_START))
            or self._segment_inputs is None
        ):
            changed = self._evaluate(state.max_ts_ms, "event", event.event_id, out)  # type: ignore[arg-type]
        # A user who only browses has no other reason for a row than new segments.
        if self.cfg.store_rows and (changed or event.type in _ROW_EVENTS):
            out.append(self._row(state.max_ts_ms))  # type: ignore[arg-type]

    def _time_passes(self, now_ms: int, out: list[Any]) -> None:
        """Apply what time alone changes up to ``now_ms`` (a timer, a replay's tick).

        The lateness watermark stays where the user's own events put it.
        """
        if self.state.max_ts_ms is None:
            return
        self._catch_up(now_ms, now_ms - self.cfg.lateness_ms, out)
        self._flush(out)
        release_ms = self.cfg.idle_release_ms
        if release_ms and now_ms - self.state.max_ts_ms >= release_ms:
            self._release(now_ms, out)

    def _release(self, now_ms: int, out: list[Any]) -> None:
        """Publish what the end of input would, as of ``now_ms``, then forget the user.

        A refusal of personalization is kept (it must still be honoured), and so
        are an erased customer's former devices; everything else goes, so
        :meth:`_retain` discards the key.
        """
        out.extend(self._finish(now_ms))
        state = self.state
        self.state = JourneyState(user=state.user, opted_out=state.opted_out, erased_devices=state.erased_devices)
        self._segment_inputs = None

    def _advance(self, ts: int, out: list[Any]) -> None:
        """Move the user's clock to ``ts`` and apply what time alone changes."""
        state = self.state
        state.max_ts_ms = ts
        if self.cfg.timers:
            state.offset_ms = self.cfg.now_ms() - ts
        # Judged before this event is applied: what the gap ended, and what
        # changed while the user was away, happened first.
        self._catch_up(ts, ts - self.cfg.lateness_ms, out)

    def _on_consent(self, event: Event, out: list[Any]) -> None:
        state = self.state
        if event.consent_personalization:
            state.opted_out = False
            return
        if state.opted_out:
            return
        if state.profile is not None or state.segments:
            out.append(self._update(event.ts_ms, "opt_out", "consent", event.event_id))
        out.extend(self._tallies())
        # Nothing of the user is kept but the refusal (and the counts, and the
        # links: a refusal on any device is the customer's).
        self.state = JourneyState(
            user=state.user, opted_out=True, devices=state.devices, erased_devices=state.erased_devices
        )
        self._segment_inputs = None
        self._examples, self._score = [], None

    def _forget(self, event: Event, out: list[Any]) -> None:
        state = self.state
        state.user = state.user or event.user
        state.processed += 1
        erase = self._update(event.ts_ms, "erase", "forget", event.event_id)
        out.append(dataclasses.replace(erase, aliases=state.devices))
        out.extend(self._tallies())
        # Everything goes; a refusal of personalization is kept so that it is
        # still honoured if the user comes back, and the erased links (hashed)
        # so that the devices' later events are not the customer's again.
        hashed = tuple(self.cfg.parser.hash_personal(d) for d in state.devices)
        erased = (*state.erased_devices, *hashed)[-_MAX_DEVICES:]
        self.state = JourneyState(user=state.user, opted_out=state.opted_out, erased_devices=erased)
        self._segment_inputs = None
        self._examples, self._score = [], None

    # -- identity stitching (operators/identity.py) --------------------------

    def hand_off(self, event: Event) -> tuple[JourneyState, list[Any]]:
        """Give up this device's state to the customer ``event`` (a login) links it to.

        Returns the state to merge into the customer's and what the device
        says as it goes: its counts, and, if anything was decided about it, a
        ``merge`` update after which the steps downstream forget it too.
        """
        state = self.state
        out: list[Any] = []
        if state.profile is not None or state.segments:
            out.append(self._update(event.ts_ms, "merge", "merge", event.event_id))
        out.extend(self._tallies())
        return state, out

    def _merge_in(self, handoff: Handoff, out: list[Any]) -> None:
        """Join a linked device's state into this customer's (see :mod:`operators.merge`)."""
        state = self.state
        login: Event = handoff.event
        state.user = state.user or login.user
        device = handoff.anonymous_id
        state.devices = (*(d for d in state.devices if d != device), device)[-_MAX_DEVICES:]
        other: JourneyState | None = handoff.state
        if other is None:
            return
        if other.opted_out and not state.opted_out:
            # A refusal given on the device is the customer's refusal.
            self._on_consent(login._replace(consent_personalization=False), out)
            return
        if state.opted_out:
            return
        cfg = self.cfg
        merge.merge_dedup(state.dedup, other.dedup, cfg.dedup)
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
        if other.max_ts_ms is not None and (state.max_ts_ms is None or other.max_ts_ms > state.max_ts_ms):
            state.max_ts_ms, state.offset_ms = other.max_ts_ms, other.offset_ms
        if other.recent and (not state.recent or other.recent[0][1] > state.recent[0][1]):
            state.recent = other.recent
        if state.profile is not None:
            # Segments and scores are decided anew on the merged profile.
            self._segment_inputs = None
            self._score = (state.max_ts_ms, "merge", login.event_id, True)  # type: ignore[assignment]

    def _late(self, event: Event, max_ts: int) -> DeadLetter:
        behind_s = (max_ts - event.ts_ms) / 1000
        reason = (
            f"late: {behind_s:.0f}s behind the user's latest event at {format_ts(max_ts)} "
            f"(allowed {self.cfg.lateness_ms / 1000:.0f}s)"
        )
        return self.cfg.parser.dead_letter(event.raw, event.source, "late", reason)

    # -- sessions ----------------------------------------------------------

    def _catch_up(self, now_ms: int, watermark_ms: int | None, out: list[Any]) -> None:
        """Apply what the passing of time to ``now_ms`` changes.

        Forgets event ids older than the dedup window, resolves labels and
        takes idle snapshots that are due, closes the sessions no on-time
        event can join (all of them when ``watermark_ms`` is None) and, if
        sessions closed or the refresh interval has passed, re-decides the
        segments once.
        """
        state = self.state
        profile = state.profile
        cfg = self.cfg
        dedup.expire(state.dedup, cfg.dedup, now_ms)
        if profile is not None:
            # Snapshots first: they are taken as of grid moments before now,
            # from the profile as it was then (before this prune).
            # Cheap tests first: most events find no snapshot and no label due.
            interval = cfg.labels.interval_ms
            if now_ms // interval > state.snapshot_ms // interval:
                for t in labels.snapshot_times(cfg.labels, state.snapshot_ms, profile.last_seen_ms, now_ms):
                    self._take_snapshot(t)
                state.snapshot_ms = now_ms
            if state.pending and now_ms - state.pending[0].ts_ms > interval:
                self._examples.extend(labels.on_time(state.pending, cfg.labels, now_ms))
            if now_ms - profile.pruned_ms >= cfg.refresh_ms:
                profiles.prune(profile, cfg.profiles, now_ms)
                triggers.prune_cooldowns(cfg.triggers, state.cooldowns, now_ms)
        if profile is not None and now_ms - state.evaluated_ms >= cfg.refresh_ms:
            # Time first: what changed while the user was away is not caused by
            # the session that the same gap closes.
            self._evaluate(now_ms, "time", None, out)
            timed = True
        else:
            timed = False
        closed = sessions.pop_closed(state.sessions, self.cfg.sessions, watermark_ms)
        for session in closed:
            self._on_session_closed(session, out)
        if closed and state.profile is not None:
            cause_event_id = closed[-1].last_event_id or None
            self._evaluate(now_ms, "session_close", cause_event_id, out)
            self._score = (now_ms, "session_close", cause_event_id, True)
        elif state.profile is not None and now_ms - state.scored_ms >= self.cfg.rescore_ms:
            # Clusters learn from idle states too, so lapsed users form their own.
            self._score = (now_ms, "time", None, True)
        if self.cfg.store_rows and state.profile is not None and (timed or closed):
            out.append(self._row(now_ms))

    def _on_session_closed(self, session: Session, out: list[Any]) -> None:
        state = self.state
        summary = sessions.summarise(session, state.user)
        out.append(summary)
        profile = state.profile
        if profile is None:
            return
        profiles.close_session(profile, self.cfg.profiles, session.start_ms, session.end_ms, summary.converted)
        rules = self.cfg.session_triggers
        if not rules:
            return
        closed_at = session.end_ms + self.cfg.sessions.gap_ms
        view = self._view(closed_at)
        scope = SessionScope(session, summary.session_id, profile)
        for rule in rules:
            values = variables.values(view, rule.profile_variables)
            values["session"] = variables.fields_of(scope, rule.map_fields("session"))
            fired = triggers.fire(
                self.cfg.triggers,
                rule,
                user=state.user,
                ts_ms=closed_at,
                cause=summary.session_id,
                cause_event_id=session.last_event_id or None,
                values=values,
                cooldowns=state.cooldowns,
            )
            if fired is not None:
                out.append(fired)

    # -- triggers and segments ---------------------------------------------

    def _event_triggers(self, event: Event, out: list[Any]) -> None:
        state = self.state
        profile = state.profile
        assert profile is not None
        view = self._view(self._now())
        scope = EventScope(view, event)
        for rule in self.cfg.event_triggers:
            if rule.event_types is not None and event.type not in rule.event_types:
                continue
            values = variables.values(view, rule.profile_variables)
            if "event" in rule.variables:
                values["event"] = variables.fields_of(event, rule.map_fields("event"))
            for name in EVENT_LOCALS:
                values[name] = EVENT_LOCALS[name].get(scope)
            fired = triggers.fire(
                self.cfg.triggers,
                rule,
                user=state.user,
                ts_ms=event.ts_ms,
                cause=event.event_id,
                cause_event_id=event.event_id,
                values=values,
                cooldowns=state.cooldowns,
            )
            if fired is not None:
                out.append(fired)

    def _evaluate(self, now_ms: int, cause: str, cause_event_id: str | None, out: list[Any]) -> bool:
        """Re-decide the profile segments as of ``now_ms``; send an update and return True on change."""
        state = self.state
        profile = state.profile
        if profile is None:
            return False
        if now_ms > state.evaluated_ms:
            state.evaluated_ms = now_ms
        if not self.cfg.segments.rules:
            return False
        view = self._view(now_ms)
        inputs = tuple([get(view) for get in self.cfg.segment_getters])
        members = segments.evaluate(self.cfg.segments, inputs, state.segments, self._segment_inputs)
        self._segment_inputs = inputs
        if members is state.segments:
            return False
        state.segments = members
        out.append(self._update(now_ms, "update", cause, cause_event_id, view))
        return True

    # -- outputs -----------------------------------------------------------

    def _now(self) -> int:
        return self.state.max_ts_ms or 0

    def _view(self, now_ms: int) -> View:
        return View(self.state.profile, self.cfg.profiles, now_ms, len(self.state.sessions))  # type: ignore[arg-type]

    def _update(
        self,
        ts_ms: int,
        kind: str,
        cause: str,
        cause_event_id: str | None,
        view: View | None = None,
        profile: dict[str, Any] | None = None,
        **models: Any,
    ) -> UserUpdate:
        """Return an update for the steps after this one; ``models`` adds features and examples."""
        values: dict[str, Any] = {}
        if view is not None:
            values = variables.values(view, self.cfg.update_variables)
            if view.profile.last_purchase_ms is None:
                values["recency_days"] = None
        return UserUpdate(
            user_id=self.state.user,
            ts_ms=ts_ms,
            kind=kind,
            cause=cause,
            cause_event_id=cause_event_id,
            segments=tuple(sorted(self.state.segments)),
            values=values,
            profile=profile,
            **models,
        )

    def _take_snapshot(self, at_ms: int) -> None:
        """Keep the user's features at ``at_ms`` until their labels are known."""
        state = self.state
        packed = features.pack(features.snapshot_vector(self._view(at_ms)))
        state.pending.append(Pending(at_ms, packed))
        state.snapshot_ms = at_ms

    def _flush(self, out: list[Any]) -> None:
        """Send the models what this item asked of them: labelled examples, a score.

        Attached to the item's last update when there is one, so the audience
        step sees new segments and new scores together.
        """
        if not self._examples and self._score is None:
            return
        state = self.state
        extra: dict[str, Any] = {"examples": tuple(self._examples)}
        score = self._score
        self._examples = []
        self._score = None
        if state.profile is None:
            return
        view = None
        if score is not None:
            at_ms, _, _, place = score
            view = self._view(at_ms)
            extra["features"] = features.scoring_vectors(view, self.cfg.labels)
            if place:
                # Clusters move slowly: placed (and learned from) at a session's
                # close and as time passes, not on every cart change.
                extra["cluster_features"] = features.cluster_features(view)
                extra["learn_cluster"] = True
            state.scored_ms = max(state.scored_ms, at_ms)
        for index in range(len(out) - 1, -1, -1):
            if isinstance(out[index], UserUpdate):
                out[index] = dataclasses.replace(out[index], **extra)
                return
        at_ms, cause, cause_event_id, _ = score if score is not None else (self._now(), "labels", None, False)
        out.append(self._update(at_ms, "update", cause, cause_event_id, view, **extra))

    def _row(self, now_ms: int) -> ProfileRow:
        return ProfileRow(self.state.user, now_ms, to_fields(self._view(now_ms)))

    def _finish(self, as_of_ms: int) -> list[Any]:
        """Close what the end of input closes, judge segments at ``as_of_ms``, report."""
        state = self.state
        out: list[Any] = []
        as_of_ms = max(as_of_ms, state.max_ts_ms or as_of_ms)
        if state.profile is not None:
            # Exact windows for the final profile, whenever the last prune was.
            profiles.prune(state.profile, self.cfg.profiles, as_of_ms)
        self._catch_up(as_of_ms, None, out)
        if state.profile is not None:
            self._evaluate(as_of_ms, "time", None, out)
            view = self._view(as_of_ms)
            out.append(self._update(as_of_ms, "final", "time", None, view, to_fields(view)))
            self._score = (as_of_ms, "time", None, True)
        self._flush(out)
        out.extend(self._tallies())
        return out

    def _tallies(self) -> list[Tally]:
        state = self.state
        if not (state.processed or state.duplicates or state.skipped):
            return []
        tally = Tally(state.user, state.processed, state.duplicates, state.skipped)
        state.processed = state.duplicates = state.skipped = 0
        return [tally]

    def _retain(self, out: list[Any]) -> bool:
        """Drop a user with nothing left to remember, after reporting its counts."""
        state = self.state
        if state.profile is not None or state.sessions or state.dedup.seen or state.opted_out or state.erased_devices:
            return StatefulLogic.RETAIN
        out.extend(self._tallies())
        return StatefulLogic.DISCARD
