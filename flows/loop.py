"""Wire the closed loop (:mod:`operators.loop`) into the journeyflow dataflow.

The loop step sits after every step that fires triggers: it receives their
triggers and the per-user step's goal events, and sends on the triggers with
their variant chosen, the conversions and, at the end of a replay, the uplift
report. ``build_flow`` calls :func:`close_loop` once; nothing else of the
flow needs to know about it.

With ``apart`` (a replay cluster) each of the loop's inputs sends one item per
batch, a list pickled once if it crosses to the loop's process (bytewax pickles
an item twice), which the loop step takes value by value
(:class:`~operators.pickled_once.EachOf`); a batch's ends of input are sent as
the latest one alone, the only one the loop keeps.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from config.settings import Settings
from flows.routing import is_a, route, values
from journeyflow import metrics
from journeyflow.records import IdentityMerge, Trigger
from journeyflow.step_records import EndOfInput, UserUpdate
from operators.goals import GoalEvent
from operators.loop import LOOP_KEY, LoopConfig
from operators.loop_records import Conversion, LoopReport
from operators.pickled_once import EachOf, PickledOnce
from operators.rule_types import Rules
from operators.unsaved import stateful

__all__ = ["loop_config", "goal_types", "close_loop"]


def loop_config(settings: Settings, rules: Rules) -> LoopConfig:
    """Return the loop step's configuration."""
    c = settings.conversions
    return LoopConfig(
        rules={rule.name: rule for rule in rules.triggers},
        reorder_ms=c.reorder_s * 1000,
        max_goal_events=c.max_goal_events_per_user,
        seed=c.seed,
    )


def goal_types(rules: Rules) -> frozenset[str]:
    """Return the event types any trigger's goal counts (what the per-user step sends on)."""
    types: set[str] = set()
    for rule in rules.triggers:
        types |= rule.goal.event_types
    return frozenset(types)


def _to_loop(item: tuple[str, Any]) -> tuple[str, Any] | None:
    """Return what the loop step hears of a record, keyed for it (``None``: nothing)."""
    value = item[1]
    if isinstance(value, (Trigger, GoalEvent, IdentityMerge)):
        return (LOOP_KEY, value)
    if isinstance(value, UserUpdate) and value.kind == "final":
        # A replay's end, as of its last event time: windows that passed by then are judged.
        return (LOOP_KEY, EndOfInput(value.ts_ms, value.user_id))
    return None


def _for_loop(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [routed for routed in map(_to_loop, items) if routed is not None]


def _for_loop_apart(items: list[tuple[str, Any]]) -> list[tuple[str, PickledOnce[list[Any]]]]:
    """Return what the loop hears of a batch as one item; of its ends of input, the latest alone.

    The loop keeps only the latest end of input's time (``LoopState.end_ms``),
    and an end changes nothing else it does.
    """
    heard: list[Any] = []
    end: EndOfInput | None = None
    for routed in map(_to_loop, items):
        if routed is None:
            continue
        value = routed[1]
        if type(value) is EndOfInput:
            if end is None or value.ts_ms > end.ts_ms:
                end = value
        else:
            heard.append(value)
    if end is not None:
        heard.append(end)
    return [(LOOP_KEY, PickledOnce(heard))] if heard else []


def _count_conversion(step_id: str, item: Conversion) -> None:
    metrics.CONVERSIONS.labels(rule=item.rule, variant=item.variant).inc()


def close_loop(
    settings: Settings,
    rules: Rules,
    journey: KeyedStream[Any],
    updates: KeyedStream[Any],
    audience: KeyedStream[Any],
    merges: KeyedStream[Any],
    conversions: Sink[Any] | None,
    report: Sink[Any] | None,
    *,
    snapshots: bool = True,
    apart: bool = False,
) -> Stream[Trigger]:
    """Add the loop step; return every trigger, variant chosen (held-out ones included).

    ``journey`` holds the per-user step's triggers and goal events, in one
    stream, so a user's goal events keep their order relative to the user's
    triggers; ``updates`` its updates for the models (the final ones tell
    the loop that a user's input is over); ``audience`` the segment-entry
    triggers (and those filled in by the recommender); ``merges`` the identity
    merges (a device's triggers pass to the customer it logged in as).
    ``apart`` (a replay cluster, never resumed): one item per input and batch.
    """
    if apart and snapshots:
        msg = "the loop's inputs sent in lists must run without snapshots (a replay); got snapshots instead"
        raise ValueError(msg)
    heard = _for_loop_apart if apart else _for_loop
    ends = op.flat_map_batch("loop_ends", updates, heard)
    # ("loop", EndOfInput): order does not matter, only the latest time is kept
    from_journey = op.flat_map_batch("loop_from_journey", journey, heard)
    # ("loop", Trigger | GoalEvent)
    from_audience = op.flat_map_batch("loop_from_audience", audience, heard)
    # ("loop", Trigger): segment-entry triggers, behind the goal events that followed them
    from_merges = op.flat_map_batch("loop_from_merges", merges, heard)
    # ("loop", IdentityMerge): a device's triggers pass to the customer it logged in as
    inputs = op.merge("loop_inputs", from_journey, from_audience, ends, from_merges)
    # With apart: ("loop", PickledOnce([...])), one per input and batch, each in the same order
    build = loop_config(settings, rules).build
    looped = stateful("loop", inputs, (lambda resume: EachOf(build(resume))) if apart else build, snapshots=snapshots)
    # ("loop", Trigger | Conversion | LoopReport)
    by_kind = route(
        "route_loop",
        looped,
        [("triggers", is_a(Trigger)), ("conversions", is_a(Conversion)), ("report", is_a(LoopReport))],
    )
    converted = op.inspect("count_conversions", values("conversions", by_kind["conversions"]), _count_conversion)
    if conversions is not None:
        op.output("write_conversions", converted, conversions)
    if report is not None:
        op.output("write_loop_report", values("loop_report", by_kind["report"]), report)
    return values("looped_triggers", by_kind["triggers"])
