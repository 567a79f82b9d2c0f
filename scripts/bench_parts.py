"""Drive every step of the journeyflow flow directly, without bytewax, and time each.

The same logic objects the flow builds (``flows.journey``, ``flows.recommend``,
``flows.loop``) receive the same items in the flow's order, in the source's
batches as a replay in one worker reads them (:func:`_source_batches`, which
ends with each key's :class:`~journeyflow.step_records.Finish`): each item of a
batch goes through the per-user journey step, then the models step takes the
batch's updates at once (``ModelLogic.on_batch``, as the flow's models step
takes them), then each item's records go through the audience, the
recommender's steps and the loop, and the records the sinks write are encoded
to JSON. Every second spent is charged to the step that spent it and to the
kind of input item that caused it (:data:`bench_measure.KINDS`), so a tick's
rescoring in the models counts as the tick's (:meth:`_Flow.models_batch`).

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
from itertools import islice
from pathlib import Path
from typing import Any

from bench_measure import PARTS, kind_of, rss_bytes  # type: ignore[import-not-found]
# PROBES and Probes are re-exported: bench_measure and the tests import them from here.
from bench_probes import PROBES, GcCharge, Probes  # type: ignore[import-not-found]

from config.settings import load_settings
from flows.files import REPLAY_BATCH, ReplayClock, ReplayProgress, read_lines, replay_items
from flows.inprocess import PerUserSteps, apply_keyed
from flows.step_configs import audience_config, event_parser, journey_config, model_config
from flows.loop import _to_loop, loop_config  # the loop's routing, not a copy of it
from flows import runtime
from flows.recommend import recommend_config, routed_here
from flows.replay_clock import RUN_END
from journeyflow.events import DeadLetter, Event
from journeyflow.step_records import Expect, Finish, Forward, UserUpdate
from operators.identity import device_key, to_device
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

    def feed(self, item: Any) -> list[tuple[int, str, Any]]:
        """Give one source item to the device and customer steps, routed as the flow routes it
        (as ``PerUserSteps.feed``); return what they emit, each record with the step (0: the
        devices', 1: the customers') and the key that emitted it."""
        steps = self.steps
        if type(item) is Finish and not item.device:
            # The customer step's Finish (operators/in_order.py, which PerUserSteps does not
            # wrap): the key's end of input now, then the key goes.
            logic = steps.customers.pop(item.user, None)
            if logic is None:
                return []
            said, _ = logic.on_eof()
            return [(1, item.user, record) for record in said if not isinstance(record, Forward)]
        if not to_device(item):
            return [(1, item.user, record) for record in apply_keyed(steps.customers, item.user, steps.journey_cfg.build, item)]
        # (A device's Finish too: the device step's own, operators/identity.py.)
        key = device_key(item)
        out: list[tuple[int, str, Any]] = []
        for record in apply_keyed(steps.devices, key, steps.devices_cfg.build, item):
            if isinstance(record, Forward):
                said = apply_keyed(steps.customers, record.user, steps.journey_cfg.build, record.item)
                out.extend((1, record.user, r) for r in said)
            else:
                out.append((0, key, record))
        return out

    def after_batch(self, outs: list[tuple[str, list[tuple[int, str, Any]]]]) -> None:
        """Carry the journey step's records of one source batch (``outs``: each item's kind and what
        :meth:`feed` returned, in input order) through the rest of the flow.

        The flow's models step takes the batch's updates at once (one ``on_batch``), in the
        order bytewax hands them on: each keyed step gives a batch's items to its keys in
        key order, the devices' step before the customers' (the same batches and order as
        a replay's models step receives, every batch: checked on /tmp/large300k.jsonl and
        /tmp/tail300k.jsonl, models22). The steps after it are per key, so each item's
        records then go on in turn.
        """
        tagged = sorted(
            ((step, key, n, kind, record) for n, (kind, out) in enumerate(outs) for step, key, record in out if isinstance(record, UserUpdate)),
            key=lambda entry: entry[:3],
        )
        scored: dict[int, Any] = {}
        if tagged:
            updates = [entry[4] for entry in tagged]
            # One scored record per update, in order (ModelLogic.on_batch).
            for update, record in zip(updates, self.models_batch(updates, [entry[3] for entry in tagged]), strict=True):
                scored[id(update)] = record
        for kind, out in outs:
            records = [record for _, _, record in out]
            self.after_models(records, [scored[id(r)] for r in records if isinstance(r, UserUpdate)], kind, time.perf_counter())

    def models_batch(self, updates: list[UserUpdate], kinds: list[str]) -> list[Any]:
        """Return the models step's records for ``updates`` (one batch; ``kinds[i]``: the kind of the item
        that made ``updates[i]``), each kind charged its part of the step's time.

        An update's own work (``ModelLogic._scored``: its examples learned, its clusters'
        placement, its scores unless taken with its run's) is timed and charged to its kind;
        the rest (the runs' scores taken together, ``batch_scoring``, and the batch's loop)
        is shared by the kinds in proportion to their updates in the batch.
        """
        clock = time.perf_counter
        models = self.models
        at = self.gc.at
        at[0] = "models"
        charged: dict[str, float] = defaultdict(float)
        kind_of_update = {id(update): kind for update, kind in zip(updates, kinds, strict=True)}
        own = models._scored

        def timed(update: UserUpdate, ready: Any) -> Any:
            at[1] = kind = kind_of_update[id(update)]
            started = clock()
            scored = own(update, ready)
            charged[kind] += clock() - started
            return scored

        # An instance attribute: on_batch's self._scored finds it before the class's method.
        models._scored = timed  # type: ignore[method-assign]
        started = clock()
        try:
            scored = list(models.on_batch(updates)[0])
        finally:
            del models._scored
        rest = clock() - started - sum(charged.values())
        seconds = self.seconds["models"]
        for kind, n in Counter(kinds).items():
            seconds[kind] += charged[kind] + rest * n / len(kinds)
        return scored

    def after_models(self, out: list[Any], scored: list[Any], kind: str, t_models: float) -> None:
        """Carry the journey step's records ``out``, its updates scored (``scored``), through the steps after
        the models (their time starts at ``t_models``)."""
        clock = time.perf_counter
        seconds = self.seconds
        at = self.gc.at
        at[0], at[1] = "audience", kind
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
        self.seconds["journey"][kind] += clock() - started
        # (Every key had its Finish in the source's batches: nothing is left here, as in the flow.)
        self.after_batch([(kind, [(1, "", record) for record in out])])
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
    at = flow.gc.at
    memory: dict[str, Any] | None = None
    items = replay_items(parsed(), ReplayClock.from_settings(flow.settings), progress, finish=True)
    batches = _source_batches(items, progress)
    # The customer step's records of a login that ended the last batch, whose placeholder
    # (Expect) began this one: the flow's customer step applies the login when its placeholder
    # comes (operators/in_order.py), so they reach the models with this batch, first of their key.
    carried: list[tuple[str, list[Any]]] = []
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        if memory is None and type(batch[0]) is Finish:
            # Every event and tick applied: what the users hold before the end of input.
            # (Its own full collection is not the flow's: not charged.)
            gc.callbacks.remove(flow.gc)
            memory = _memory(flow, base, progress.users)
            gc.callbacks.append(flow.gc)
        outs, carried = carried, []
        for item in batch:
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
            out = flow.feed(item)
            if probes is not None:
                probes.active = False
            seconds["journey"][kind] += clock() - started
            outs.append((kind, out))
        if following is not None and isinstance(following[0], Expect) and type(batch[-1]) is Event:
            kind, out = outs[-1]
            outs[-1] = (kind, [r for r in out if r[0] == 0])
            carried = [(kind, [r for r in out if r[0] == 1])]
        flow.after_batch(outs)
        batch = following
    if memory is None:  # no event at all: no Finish either
        gc.callbacks.remove(flow.gc)
        memory = _memory(flow, base, progress.users)
        gc.callbacks.append(flow.gc)
    # The end of input reached every user (one Finish per key, as a tick does; bytewax's own
    # end of input then finds no key left).
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


def _source_batches(items: Iterator[Any], progress: ReplayProgress) -> Iterator[list[Any]]:
    """Yield ``items`` in the batches a replay's source in one worker reads them.

    As ``flows.files._ReplayPartition.next_batch`` (with ``finish``, as the replay of one
    worker runs it): :data:`~flows.files.REPLAY_BATCH` items at a time, and once the
    clock is finishing (``progress.finishing``) a batch also ends at each
    :data:`~flows.replay_clock.RUN_END` (never yielded), so that the last ticks, the
    devices' Finish and the customers' Finish reach the models in batches of their own.
    """
    rest: list[Any] = []
    while True:
        batch = rest or list(islice(items, REPLAY_BATCH))
        rest = []
        if batch and progress.finishing:
            for i, item in enumerate(batch):
                if item is RUN_END:
                    batch, rest = batch[:i], batch[i + 1 :]
                    break
            if not batch:
                continue
        if not batch:
            return
        yield batch


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
