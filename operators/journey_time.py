"""The per-user step's time path: what the passing of time and the end of input change.

A part of :class:`~operators.journey.JourneyLogic` (split from
:mod:`operators.journey` to keep each module small): the step calls
:func:`catch_up` when an event moves the user's clock forward,
:func:`time_passes` on a timer or a replay's tick, and :func:`finish` at the
end of input (and for an idle release). The functions read and update the
logic's state, and its working fields beside it (never in the snapshot)
through the logic's narrow interface: :attr:`~operators.journey.JourneyLogic.asks`,
``judged_ms`` and ``segments_stale()``, ``pruned_after_items``,
``evaluate()`` and ``replace_state()``.

Guarantees (see :mod:`operators.journey`): sessions close once no on-time
event can join them, or all of them at the end of input; segments are
re-decided once per catch-up at most; with ``idle_release_ms``, a user idle
that long gets what the end of input gives (a final row) and is discarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operators import dedup, model_asks, privacy, profile_events, profiles, sessions, triggers, updates
from operators.decisions import session_triggers
from operators.journey_state import NO_COOLDOWNS, NO_SESSIONS, view_of
from operators.model_asks import ScoreAsk, flush
from operators.sessions import Session

if TYPE_CHECKING:
    from operators.journey import JourneyLogic

__all__ = ["time_passes", "catch_up", "finish"]


def time_passes(logic: JourneyLogic, now_ms: int, out: list[Any], keep_placed: bool = False) -> None:
    """Apply what time alone changes up to ``now_ms`` (a timer, a replay's tick).

    The lateness watermark stays where the user's own events put it. ``keep_placed``: a
    replay's last tick, whose placed score's rows the end of input reuses (see
    :func:`~operators.model_asks.payload`).
    """
    if logic.state.max_ts_ms is None:
        return
    catch_up(logic, now_ms, now_ms - logic.cfg.lateness_ms, out)
    # (No item between the catch-up's judgement and this: its inputs are still the profile's.)
    flush(logic.asks, logic.state, logic.cfg, out, keep_placed=keep_placed, judged=logic.judged_inputs())
    release_ms = logic.cfg.idle_release_ms
    if release_ms and now_ms - logic.state.max_ts_ms >= release_ms:
        # What the end of input would publish, as of now; then the user goes.
        out.extend(finish(logic, now_ms))
        logic.replace_state(privacy.released(logic.state))


def catch_up(logic: JourneyLogic, now_ms: int, watermark_ms: int | None, out: list[Any]) -> bool:
    """Apply what the passing of time to ``now_ms`` changes.

    Forgets event ids older than the dedup window, resolves labels and
    takes idle snapshots that are due, closes the sessions no on-time
    event can join (all of them when ``watermark_ms`` is None) and, if
    sessions closed or the refresh interval has passed, re-decides the
    segments once. Returns whether the segments were judged as of
    ``now_ms`` after everything else it changed.
    """
    state = logic.state
    profile = state.profile
    cfg = logic.cfg
    dedup.expire(state.dedup, cfg.dedup, now_ms)
    if profile is not None:
        # Snapshots first: they are taken as of grid moments before now,
        # from the profile as it was then (before this prune).
        model_asks.on_time(logic.asks, state, cfg, now_ms)
        if now_ms - profile.pruned_ms >= cfg.refresh_ms:
            # (Segments read the peak of product views, which a prune recomputes.)
            logic.segments_stale()
            profiles.prune(profile, cfg.profiles, now_ms)
            logic.pruned_after_items = True
            triggers.prune_cooldowns(cfg.triggers, state.cooldowns, now_ms)
            if not state.cooldowns:
                state.cooldowns = NO_COOLDOWNS
    if profile is not None and now_ms - state.evaluated_ms >= cfg.refresh_ms:
        # Time first: what changed while the user was away is not caused by
        # the session that the same gap closes.
        logic.evaluate(now_ms, "time", None, out)
        timed = True
    else:
        timed = False
    closed = sessions.pop_closed(state.sessions, cfg.sessions, watermark_ms)
    if closed and not state.sessions:
        state.sessions = NO_SESSIONS
    for session in closed:
        _on_session_closed(logic, session, out)
    if closed and state.profile is not None:
        cause_event_id = closed[-1].last_event_id or None
        # Judged as of now just above (timed): the closes changed only what sessions read.
        logic.evaluate(now_ms, "session_close", cause_event_id, out, closes_since=timed)
        logic.asks.score = ScoreAsk(now_ms, "session_close", cause_event_id, True)
    elif state.profile is not None and now_ms - state.scored_ms >= cfg.rescore_ms:
        # Clusters learn from idle states too, so lapsed users form their own.
        logic.asks.score = ScoreAsk(now_ms, "time", None, True)
    if cfg.store_rows and state.profile is not None and (timed or closed):
        out.append(updates.row(state, cfg, now_ms))
    return state.profile is not None and (timed or bool(closed))


def _on_session_closed(logic: JourneyLogic, session: Session, out: list[Any]) -> None:
    state = logic.state
    logic.segments_stale()
    summary = sessions.summarise(session, state.user)
    out.append(summary)
    if state.profile is None:
        return
    profile_events.close_session(state.profile, logic.cfg.profiles, session.start_ms, session.end_ms, summary.converted)
    if session.start_ms < state.profile.pruned_ms - profiles.SESSION_STARTS_MS:
        # (A session longer than the starts' window: a prune as of then would drop its start.)
        logic.pruned_after_items = False
    if logic.cfg.session_triggers:
        session_triggers(state, logic.cfg, session, summary, out)


def finish(logic: JourneyLogic, as_of_ms: int) -> list[Any]:
    """Close what the end of input closes, judge segments at ``as_of_ms``, report."""
    state = logic.state
    cfg = logic.cfg
    out: list[Any] = []
    as_of_ms = max(as_of_ms, state.max_ts_ms or as_of_ms)
    if state.profile is not None and not (logic.pruned_after_items and state.profile.pruned_ms == as_of_ms):
        # Exact windows for the final profile, whenever the last prune was. (Pruned as
        # of then with nothing applied since, mostly by a replay's last tick: the same
        # prune would change nothing; 98% of the users of a 60k-line slice, 7 us each.)
        logic.segments_stale()  # (a prune now may lower the peak of product views)
        profiles.prune(state.profile, cfg.profiles, as_of_ms)
    judged = catch_up(logic, as_of_ms, None, out)
    if state.profile is not None:
        if not judged and logic.judged_ms != as_of_ms:
            # (Judged as of now since the last change, by the catch-up or a replay's
            # last tick: the same inputs would decide the same again.)
            logic.evaluate(as_of_ms, "time", None, out)
        # The final row carries the last score (and what else the models were asked) itself.
        logic.asks.score = ScoreAsk(as_of_ms, "time", None, True)
        extra = model_asks.payload(logic.asks, state, cfg)
        out.append(updates.final(state, cfg, view_of(state, cfg, as_of_ms), **extra))
    else:
        flush(logic.asks, state, cfg, out)
    out.extend(updates.tallies(state))
    return out
