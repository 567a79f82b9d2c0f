"""The journeyflow dataflow: one definition for replays and the live worker.

Only the inputs and the sinks differ between a replay and the live worker;
every operator in between is the same. The shape of the pipeline::

    inputs ──► journey (per user) ──► sessions, dead letters, tallies ──► sinks

Shape comments after each step say what flows: ``# (user, Event)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from config.settings import Settings
from journeyflow.events import DeadLetter, EventParser
from journeyflow.records import SessionSummary, Tally
from operators.dedup import DedupConfig
from operators.journey import Inbound, JourneyConfig
from operators.sessions import SessionConfig

__all__ = ["Inputs", "Outputs", "build_flow", "journey_config", "event_parser"]

Inputs = Callable[[Dataflow], tuple[KeyedStream[Inbound], Stream[DeadLetter]]]
"""Adds the input steps to a flow; returns events keyed by user, and dead letters."""


@dataclass(frozen=True)
class Outputs:
    """Where each kind of record goes; ``None`` drops nothing silently, it means
    the flow does not produce that output at all (only tallies may be ``None``)."""

    sessions: Sink[Any]
    dead_letters: Sink[Any]
    tallies: Sink[Any] | None = None


def event_parser(settings: Settings) -> EventParser:
    """Return the parser for the input contract, configured from ``settings``."""
    return EventParser(
        max_event_bytes=settings.input.max_event_bytes,
        personal_fields=tuple(settings.privacy.personal_fields),
        salt=settings.privacy.salt,
    )


def journey_config(settings: Settings, *, timers: bool) -> JourneyConfig:
    """Return the per-user step's configuration from ``settings``."""
    return JourneyConfig(
        parser=event_parser(settings),
        dedup=DedupConfig(
            window_ms=settings.dedup.window_s * 1000,
            max_ids=settings.dedup.max_ids_per_user,
        ),
        sessions=SessionConfig(
            gap_ms=settings.sessions.gap_s * 1000,
            lateness_ms=settings.lateness.allowed_s * 1000,
            max_carted=settings.profiles.max_cart_items,
        ),
        timers=timers,
    )


def _only(step_id: str, up: KeyedStream[Any], kind: type) -> Stream[Any]:
    """Keep the records of one class from a keyed stream, without their key."""
    return op.filter_map(step_id, up, lambda kv: kv[1] if isinstance(kv[1], kind) else None)


def build_flow(
    settings: Settings,
    inputs: Inputs,
    outputs: Outputs,
    *,
    timers: bool,
    flow_id: str = "journeyflow",
) -> Dataflow:
    """Return the dataflow; ``timers`` is on for the live worker, off for replays.

    Renaming a step or ``flow_id`` makes bytewax recovery lose that step's
    state: keep them stable.
    """
    flow = Dataflow(flow_id)
    events, early_dead = inputs(flow)
    # (user, Event | RawRecord | EndOfInput), DeadLetter
    cfg = journey_config(settings, timers=timers)
    journey = op.stateful("journey", events, cfg.build)
    # (user, SessionSummary | DeadLetter | Tally)
    sessions = _only("sessions", journey, SessionSummary)
    # SessionSummary
    late = _only("late", journey, DeadLetter)
    # DeadLetter
    dead = op.merge("dead_letters", early_dead, late)
    # DeadLetter
    op.output("write_sessions", sessions, outputs.sessions)
    op.output("write_dead_letters", dead, outputs.dead_letters)
    if outputs.tallies is not None:
        op.output("write_tallies", _only("tallies", journey, Tally), outputs.tallies)
    return flow
