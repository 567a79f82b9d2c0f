#!/usr/bin/env python
"""The measurements behind ``scripts/bench.py``, each run in a fresh process.

``python scripts/bench_measure.py KIND FILE RESULT [--config FILE] [--out DIR] [-- REPLAY ARGUMENTS...]``
writes one JSON object to RESULT. A fresh process per measurement keeps them
apart: the memory one leaves behind, its garbage and its warm caches do not
flatter the next. KIND is one of:

* ``orjson``: the first floor, reading the file and ``orjson.loads`` of every line;
* ``engine``: the second floor, a trivial bytewax flow with the replay's source
  and sinks and one pass-through keyed step (no journeyflow logic at all);
* ``replay``: the whole ``journeyflow replay`` command, in this process, with
  the time spent in the garbage collector and the resident memory of the flow;
* ``parts`` (and ``probes``): every step's logic driven directly, without
  bytewax, in the flow's order, timed per step and per kind of input item;
  ``probes`` also times the journey step's inner parts (``bench_parts.PROBES``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Imported once here, not in kind_of: two function-level imports cost about 3.6 us a call,
# and kind_of is called twice per line and once per tick.
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.step_records import Finish, Tick  # noqa: E402

__all__ = ["KINDS", "PARTS", "kind_of", "rss_bytes"]

#: Kinds of input item, in the order the tables show them; "other" is search,
#: email, login, identify, consent and forget events.
KINDS = ("view", "cart", "purchase", "other", "dead letter", "tick", "end of input")
_KIND_OF_TYPE = {
    "page_view": "view",
    "product_view": "view",
    "add_to_cart": "cart",
    "remove_from_cart": "cart",
    "checkout_start": "cart",
    "purchase": "purchase",
}
#: The flow's steps, in its order; "outputs" is encoding the records the sinks write.
PARTS = ("parse", "journey", "models", "audience", "recommender", "loop", "outputs")

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Return this process's resident memory now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[1]) * _PAGE


def kind_of(item: Any) -> str:
    """Return which row of the tables ``item`` (a parsed line, a tick, an end of input) counts in."""
    if isinstance(item, Tick):
        return "tick"
    if isinstance(item, DeadLetter):
        return "dead letter"
    if isinstance(item, Finish):
        return "end of input"  # a replay's end of one key's input (flows/replay_clock.py)
    return _KIND_OF_TYPE.get(item.type, "other")


@dataclass
class GcTimer:
    """Time spent in the garbage collector, from ``gc.callbacks``."""

    seconds: float = 0.0
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def measure_orjson(path: Path) -> dict[str, Any]:
    """Return lines and seconds of reading ``path`` and ``orjson.loads`` of every line."""
    from flows.files import read_lines

    started, cpu = time.perf_counter(), time.process_time()
    lines = 0
    for _, line, _ in read_lines(path):
        lines += 1
        with contextlib.suppress(orjson.JSONDecodeError):
            orjson.loads(line)
    return {"lines": lines, "seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


def measure_engine(path: Path, out: Path, config: str | None) -> dict[str, Any]:
    """Return lines and seconds of the trivial flow: the replay's source and sinks, one pass-through keyed step."""
    from datetime import timedelta

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.operators import StatefulLogic

    from config.settings import load_settings
    from flows.file_sinks import JsonLinesSink
    from flows.files import ReplayClock, ReplayProgress, ReplaySource
    from flows.step_configs import event_parser
    from flows.runtime import execute
    from journeyflow.events import DeadLetter, Event

    class PassThrough(StatefulLogic[Any, Any, None]):
        def on_item(self, value: Any) -> tuple[list[Any], bool]:
            return [value], StatefulLogic.RETAIN

        def snapshot(self) -> None:
            return None

    class Line:
        """An event written back as it came: the sink's encoding without journeyflow's records."""

        __slots__ = ("raw",)

        def __init__(self, raw: bytes) -> None:
            self.raw = raw

        def to_json(self) -> bytes:
            return self.raw

    settings = load_settings(config)
    out.mkdir(parents=True, exist_ok=True)
    progress = ReplayProgress()
    clock = ReplayClock.from_settings(settings)
    flow = Dataflow("bench_floor")
    read = op.input("read", flow, ReplaySource([path], event_parser(settings), progress, clock))
    split = op.branch("split_dead_letters", read, lambda item: isinstance(item, DeadLetter))
    keyed = op.key_on("key_by_user", split.falses, lambda item: item.user)
    passed = op.stateful("pass", keyed, lambda resume: PassThrough())
    events = op.filter_map("events", passed, lambda kv: Line(kv[1].raw) if isinstance(kv[1], Event) else None)
    op.output("write_events", events, JsonLinesSink(out, "events.jsonl"))
    op.output("write_dead_letters", split.trues, JsonLinesSink(out, "dead_letters.jsonl"))
    started, cpu = time.perf_counter(), time.process_time()
    execute(flow, epoch_interval=timedelta(seconds=settings.run.epoch_s))
    return {"lines": progress.read, "seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


def measure_replay(path: Path, out: Path, config: str | None, extra: list[str]) -> dict[str, Any]:
    """Run ``journeyflow replay`` here; return its timings, GC time and the flow's resident memory."""
    from journeyflow import cli

    timer = GcTimer()
    samples: list[tuple[float, float, int]] = []  # (wall clock, CPU time, resident bytes)
    stop = threading.Event()
    first: list[int] = []  # index of the first sample of the flow

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append((time.perf_counter(), time.process_time(), rss_bytes()))
            # The flow has started when its sinks have opened their part files.
            if not first and out.is_dir() and any(".part-" in name for name in os.listdir(out)):
                first.append(len(samples) - 1)

    # Resident memory when the source has nothing more to emit: in a one-worker replay every
    # user has finished by then (their Finish items, flows/replay_clock.py), at the memory
    # the users' state reached; with several workers, before bytewax's end of input.
    from flows.files import _ReplayPartition

    at_input_end: list[int] = []
    next_batch = _ReplayPartition.next_batch

    def noting_the_end(self: Any) -> list[Any]:
        try:
            return next_batch(self)
        except StopIteration:
            if not at_input_end:
                at_input_end.append(rss_bytes())
            raise

    _ReplayPartition.next_batch = noting_the_end  # type: ignore[method-assign]
    gc.collect()
    base = rss_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    argv = ["replay", str(path), "--out", str(out), "-q", *(["--config", config] if config else []), *extra]
    gc.callbacks.append(timer)
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(argv)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    gc.callbacks.remove(timer)
    _ReplayPartition.next_batch = next_batch  # type: ignore[method-assign]
    stop.set()
    sampler.join()
    summary = orjson.loads((out / "summary.json").read_bytes())
    # The flow lasts the summary's elapsed_s from its start: after it, the outputs
    # are combined and the report built, with memory of their own.
    start = samples[first[0]] if first else (started, 0.0, base)
    flow = [sample for sample in samples[first[0] if first else 0 :] if sample[0] <= start[0] + summary["elapsed_s"]]
    # CPU time over wall time while the flow ran: below 1, other processes took the core part of the time.
    span = flow[-1][0] - start[0] if flow else 0.0
    flow_cpu_share = (flow[-1][1] - start[1]) / span if first and span > 1.0 else cpu / wall
    return {
        "status": status,
        "lines": summary["read"],
        "events": summary["processed"],
        "users": summary["users"],
        # Scores taken by the models: none before the BG/NBD priors are first fitted.
        "models_scored": summary.get("models", {}).get("scored"),
        "flow_s": summary["elapsed_s"],
        "report_s": summary["report"]["elapsed_s"],
        "wall_s": wall,
        "gc_s": timer.seconds,
        "gc_collections": timer.collections,
        "cpu_s": cpu,
        "flow_cpu_share": flow_cpu_share,
        "rss_growth_bytes": max((rss for _, _, rss in flow), default=base) - start[2],
        # None with --processes N > 1 (each process reads through its own share).
        "rss_growth_at_input_end_bytes": at_input_end[0] - start[2] if at_input_end else None,
        "flow_start_seen": bool(first),
        "rss_samples": len(flow),
    }


def measure_parts(path: Path, config: str | None, *, probes: bool) -> dict[str, Any]:
    """Drive every step's logic in the flow's order, without bytewax; see :mod:`bench_parts`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_parts import Probes, drive  # type: ignore[import-not-found]

    probe = Probes() if probes else None
    if probe is not None:
        probe.install()
    figures = drive(path, config, probe)
    if probe is not None:
        figures["probes_s"] = dict(probe.seconds)
        figures["probes_missing"] = probe.missing
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("orjson", "engine", "replay", "parts", "probes"))
    parser.add_argument("file", type=Path)
    parser.add_argument("result", type=Path, help="write the figures here (JSON)")
    parser.add_argument("--config", help="settings file")
    parser.add_argument("--out", type=Path, help="output folder (engine, replay)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # After "--": more arguments for journeyflow replay (argparse would take them for its own).
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    if args.kind == "orjson":
        figures = measure_orjson(args.file)
    elif args.kind == "engine":
        figures = measure_engine(args.file, args.out, args.config)
    elif args.kind == "replay":
        figures = measure_replay(args.file, args.out, args.config, extra)
    else:
        figures = measure_parts(args.file, args.config, probes=args.kind == "probes")
    args.result.write_bytes(orjson.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
