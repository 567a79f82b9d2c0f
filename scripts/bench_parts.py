"""Drive every step of the journeyflow flow directly, without bytewax, and time each.

The same logic objects the flow builds (``flows.journey``, ``flows.recommend``,
``flows.loop``) receive the same items in the flow's order: each replay item
goes through the per-user journey step, what it emits through the models,
the audience, the recommender's steps and the loop, and the records the sinks
write are encoded to JSON. Every second spent is charged to the step that spent
it and to the kind of input item that caused it (:data:`bench_measure.KINDS`),
so a tick's rescoring in the models counts as the tick's.

A key's state is dropped when its logic says DISCARD, as bytewax does, so the
resident memory measured just before the end of input (every event and tick
applied) is what the flow itself would hold.

The garbage collector's pauses are charged too (``gc_seconds``, included in
``seconds``): a full collection walks every live object, so it costs more as
users grow, and it is charged to whichever step and item kind happened to
allocate the object that started it.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_measure import PARTS, kind_of, rss_bytes  # type: ignore[import-not-found]
# PROBES and Probes are re-exported: bench_measure and the tests import them from here.
from bench_probes import PROBES, GcCharge, Probes  # type: ignore[import-not-found]

from config.settings import load_settings
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items
from flows.inprocess import PerUserSteps, apply_keyed
from flows.step_configs import audience_config, event_parser, journey_config, model_config
from flows.loop import _to_loop, loop_config  # the loop's routing, not a copy of it
from flows import runtime
from flows.recommend import recommend_config, routed_here
from journeyflow.events import DeadLetter
from journeyflow.step_records import Expect, UserUpdate
from operators.recommend import RecAsk
from operators.recommend_audience import build_audience_lists
from operators.recommend_steps import build_catalog
from operators.rules import load_rules

__all__ = ["PROBES", "Probes", "drive"]

def _encode(records: list[Any]) -> None:
    for record in records:
        to_json = getattr(record, "to_json", None)
        if to_json is not None:
            to_json()


class _Flow:
    """The flow's steps after the journey step, each charged its own time."""

    def __init__(self, config: str | None, probes: Probes | None) -> None:
        settings = load_settings(config)
        self.probes = probes
        rules = load_rules(settings.rules_path)
        self.settings = settings
        self.parser = event_parser(settings)
        self.journey = journey_config(settings, rules, timers=False)
        # The device and customer steps, routed as the flow routes them.
        self.steps = PerUserSteps(self.journey, settings.identity.link_idle_s * 1000)
        self.models = model_config(settings).build(None)
        self.audience = audience_config(rules)
        self.rec = recommend_config(settings, rules=rules)
        self.loop = loop_config(settings, rules).build(None)
        self.catalog = build_catalog(self.rec)(None) if self.rec is not None else None
        # With the recommender on, the flow's audience step holds the customers' lists
        # (operators/recommend_audience.py): its audience part is charged to the audience,
        # its lists part to the recommender.
        self.make_audience = (
            self.audience.build if self.rec is None else build_audience_lists(self.audience, self.rec)
        )
        self.audiences: dict[str, Any] = {}
        self.seconds: dict[str, dict[str, float]] = {part: defaultdict(float) for part in PARTS}
        # The garbage collector's pauses, charged where they happen (see bench_probes.GcCharge).
        self.gc = GcCharge()

    def after_journey(self, out: list[Any], kind: str, started: float) -> None:
        """Carry the journey step's records ``out`` through the rest of the flow (its time starts at ``started``)."""
        clock = time.perf_counter
        seconds = self.seconds
        at = self.gc.at
        at[0], at[1] = "models", kind
        # The models step takes the updates as a batch (the end of input's final rows are one).
        updates = [record for record in out if isinstance(record, UserUpdate)]
        scored: list[Any] = list(self.models.on_batch(updates)[0]) if updates else []
        t_models = clock()
        seconds["models"][kind] += t_models - started
        at[0] = "audience"
        published: list[tuple[str, Any]] = []
        rec = self.rec
        # With the recommender on: each user's records for the lists part, in the flow's order.
        through: dict[str, list[Any]] = {}
        for update in scored:
            if isinstance(update, UserUpdate):
                key = update.user_id
                if rec is None:
                    published.extend((key, r) for r in apply_keyed(self.audiences, key, self.make_audience, update))
                else:
                    logic = self.audiences.get(key)
                    if logic is None:
                        logic = self.audiences[key] = self.make_audience(None)
                    through.setdefault(key, []).extend(logic.audience_part([update]))
        t_audience = clock()
        seconds["audience"][kind] += t_audience - t_models
        at[0] = "recommender"
        unrouted = out
        if rec is not None:
            if rec.payloads:
                # The flow's rec_triggers step, built only when a payload reads the list.
                for record in out:
                    if routed_here(rec, record):
                        through.setdefault(record.user_id, []).append(record)
                unrouted = [r for r in out if not routed_here(rec, r)]
            # The flow's path: the catalog answers the asks, each customer's list blends them.
            asks = [r for r in out if type(r) is RecAsk]
            if asks:
                for user, answers in self.catalog.answers(asks).items():  # type: ignore[union-attr]
                    through.setdefault(user, []).append(answers)
            for key, records in through.items():
                logic = self.audiences.get(key)
                if logic is None:
                    logic = self.audiences[key] = self.make_audience(None)
                published.extend((key, r) for r in logic.lists_part(records))
                if logic.discarded():
                    del self.audiences[key]
        t_rec = clock()
        seconds["recommender"][kind] += t_rec - t_audience
        at[0] = "loop"
        looped: list[Any] = []
        for record in [*unrouted, *(r for _, r in published)]:
            routed = _to_loop(("", record))
            if routed is not None:
                looped.extend(self.loop.on_item(routed[1])[0])
        t_loop = clock()
        seconds["loop"][kind] += t_loop - t_rec
        at[0] = "outputs"
        # What the sinks write: sessions and dead letters, the loop's triggers and
        # conversions, segment changes and profiles (journey triggers go via the loop).
        _encode([r for r in out if not isinstance(r, UserUpdate) and _to_loop(("", r)) is None])
        _encode(looped)
        _encode([r for _, r in published if _to_loop(("", r)) is None])
        seconds["outputs"][kind] += clock() - t_loop

    def on_eof(self) -> None:
        """Give every logic bytewax's end of input, charged to the end of input."""
        clock = time.perf_counter
        kind = "end of input"
        self.gc.at[:] = ["journey", kind]
        started = clock()
        if self.probes is not None:
            self.probes.active = True
        out = self.steps.finish()
        if self.probes is not None:
            self.probes.active = False
        t_journey = clock()
        self.seconds["journey"][kind] += t_journey - started
        self.after_journey(out, kind, t_journey)
        if self.rec is not None:
            # The audience step with the lists: each part's end of input charged to its part.
            self.gc.at[:] = ["audience", kind]
            started = clock()
            said = {key: logic.audience_eof() for key, logic in self.audiences.items()}
            t_audience = clock()
            self.seconds["audience"][kind] += t_audience - started
            self.gc.at[:] = ["recommender", kind]
            for key, logic in self.audiences.items():
                _encode(logic.lists_part(said[key]) + logic.lists_eof())
            self.seconds["recommender"][kind] += clock() - t_audience
        for part, logics in (
            ("models", [self.models]),
            ("audience", list(self.audiences.values()) if self.rec is None else []),
            ("recommender", [*filter(None, [self.catalog])]),
            ("loop", [self.loop]),
        ):
            self.gc.at[:] = [part, kind]
            started = clock()
            for logic in logics:
                _encode(list(logic.on_eof()[0]))
            self.seconds[part][kind] += clock() - started


def drive(path: Path, config: str | None, probes: Probes | None = None) -> dict[str, Any]:
    """Replay ``path`` through every step's logic; return seconds per step and kind, counts, memory.

    With ``probes``, the journey step's inner parts are timed too (see :class:`Probes`).
    """
    flow = _Flow(config, probes)
    seconds = flow.seconds
    clock = time.perf_counter
    counts: Counter[str] = Counter()

    def parsed() -> Iterator[Any]:
        parse = flow.parser.parse
        label = str(path)
        at = flow.gc.at
        for number, line, _ in read_lines(path):
            # (A collection while parsing is charged to views: the line's kind is not known yet.)
            at[0], at[1] = "parse", "view"
            started = clock()
            item = parse(line, f"{label}:{number}")
            took = clock() - started
            # The kind after the clock: kind_of imports two names per call (about 2.5 us on
            # this machine), which were charged to parse until speed16.
            seconds["parse"][kind_of(item)] += took
            yield item

    progress = ReplayProgress()
    gc.collect()
    # The collector tuned as the flow runs it (flows.runtime.execute), where that is done.
    thresholds = getattr(runtime, "GC_THRESHOLDS", None)
    if thresholds is not None:
        gc.freeze()
        gc.set_threshold(*thresholds)
    base = rss_bytes()
    gc.callbacks.append(flow.gc)
    wall, cpu = clock(), time.process_time()
    steps = flow.steps
    at = flow.gc.at
    for item in replay_items(parsed(), ReplayClock.from_settings(flow.settings), progress):
        if isinstance(item, Expect):
            continue  # in input order here already: nothing to wait for
        kind = kind_of(item)
        counts[kind] += 1
        if isinstance(item, DeadLetter):
            started = clock()
            item.to_json()
            seconds["outputs"][kind] += clock() - started
            continue
        at[0], at[1] = "journey", kind
        started = clock()
        if probes is not None:
            probes.active = True
        out = steps.feed(item)
        if probes is not None:
            probes.active = False
        t_journey = clock()
        seconds["journey"][kind] += t_journey - started
        flow.after_journey(out, kind, t_journey)
    # Every event and tick applied: what the users hold before the end of input.
    # (Its own full collection is not the flow's: not charged.)
    gc.callbacks.remove(flow.gc)
    memory = _memory(flow, base, progress.users)
    gc.callbacks.append(flow.gc)
    # The end of input reaches every user (bytewax's EOF; one per key, as a tick does).
    counts["end of input"] = progress.users
    flow.on_eof()
    wall, cpu = clock() - wall, time.process_time() - cpu
    gc.callbacks.remove(flow.gc)
    return {
        "lines": sum(n for k, n in counts.items() if k not in ("tick", "end of input")),
        "counts": dict(counts),
        "seconds": {part: dict(by_kind) for part, by_kind in seconds.items()},
        "gc_seconds": {part: dict(by_kind) for part, by_kind in flow.gc.seconds.items()},
        "wall_s": wall,
        "cpu_s": cpu,
        **memory,
    }


def _memory(flow: _Flow, base: int, users: int) -> dict[str, Any]:
    """Return resident memory now (every event and tick applied), per user seen, and snapshot sizes."""
    gc.collect()
    growth = rss_bytes() - base
    held = [*flow.steps.devices.values(), *flow.steps.customers.values()]
    audience = list(flow.audiences.values())
    return {
        "users": users,
        "users_held": len(held),
        "rss_growth_bytes": growth,
        "snapshot_bytes_per_held_user": round(sum(len(j.snapshot()) for j in held) / max(1, len(held))),
        "audience_snapshot_bytes_per_user": round(sum(len(a.snapshot()) for a in audience) / max(1, len(audience))),
    }
