#!/usr/bin/env python
"""Time the per-user steps alone (device and customer journey steps), per kind of item.

``python scripts/bench_journey.py FILE [--rounds N] [--digest]``: the replay's items of
FILE (events and ticks; dead letters left out) are parsed first, then fed to
:class:`flows.inprocess.PerUserSteps` as the flow routes them, and each item's time is
charged to its kind (page and product views apart), the end of input to every user.
Unlike ``bench_measure.py parts`` no other step runs, so the figures are the step's own
work without the others' caches and garbage. ``--digest`` prints a digest of every record
the steps emit (their ``repr``), to compare two builds' outputs quickly. Each round also
prints how many items of each kind it fed (figures are CPU microseconds: wall time
scaled by the round's CPU share, as ``bench.py`` does) and the garbage collector's time and collections
by generation while it fed them (``gc.callbacks``; the collector's thresholds are the flow's,
:data:`flows.runtime.GC_THRESHOLDS`), so that a file's larger heap shows apart. Ticks are
charged apart by whether something was due for the customer they reach (``tick (due)``:
:func:`operators.due.next_due_ms`; ``tick (nothing due)`` costs the test alone; ticks to
anonymous devices: ``tick (device)``). ``--sizes`` prints, per kind, the mean sizes of what
the customer's state held when the item reached it (ids, open sessions, pending snapshots,
products, days): whether a file's users carry more history. Run it under
``flock /tmp/bench.lock``; compiled modules are used when the build is current.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_measure import GcTimer, kind_of  # type: ignore[import-not-found]  # noqa: E402

from config.settings import load_settings  # noqa: E402
from flows import runtime  # noqa: E402
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from flows.inprocess import PerUserSteps  # noqa: E402
from flows.step_configs import event_parser, journey_config  # noqa: E402
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.step_records import Expect  # noqa: E402
from operators.due import next_due_ms  # noqa: E402
from operators.rules import load_rules  # noqa: E402


def _items(path: Path, settings: Any, progress: ReplayProgress) -> list[tuple[str, Any]]:
    parser = event_parser(settings)
    parsed = (parser.parse(line, f"{path}:{number}") for number, line, _ in read_lines(path))
    found = []
    for item in replay_items(parsed, ReplayClock.from_settings(settings), progress):
        if isinstance(item, (Expect, DeadLetter)):
            continue
        kind = kind_of(item)
        found.append((item.type if kind == "view" else kind, item))
    return found


def _tick_kind(steps: PerUserSteps, tick: Any) -> str:
    """Return ``tick (due)``, ``tick (nothing due)`` or ``tick (device)`` for a tick about to be fed."""
    logic = steps.customers.get(tick.user)
    if logic is None:
        return "tick (device)"
    due_ms = next_due_ms(logic.state, logic.cfg)  # type: ignore[attr-defined]
    return "tick (due)" if due_ms is not None and tick.ts_ms >= due_ms else "tick (nothing due)"


def _sizes(state: Any) -> dict[str, int]:
    """Return the sizes of what one customer's state holds (see ``--sizes``)."""
    profile = state.profile
    found = {"ids": len(state.dedup.ids) >> 1, "open sessions": len(state.sessions), "pending": len(state.pending)}
    if profile is not None:
        found["products"] = len(profile.view_times)
        found["days"] = len(profile.day_counts)
        found["session starts"] = len(profile.session_starts)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--digest", action="store_true", help="print a digest of the records emitted")
    parser.add_argument("--sizes", action="store_true", help="print the mean sizes of the state each kind reached")
    args = parser.parse_args()
    settings = load_settings(None)
    rules = load_rules(settings.rules_path)
    progress = ReplayProgress()
    items = _items(args.file, settings, progress)
    gc.collect()
    gc.freeze()  # the parsed items are not the steps' garbage
    thresholds = getattr(runtime, "GC_THRESHOLDS", None)
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    clock = time.perf_counter
    for round_ in range(args.rounds):
        steps = PerUserSteps(journey_config(settings, rules, timers=False), settings.identity.link_idle_s * 1000)
        seconds: dict[str, float] = defaultdict(float)
        counts: Counter[str] = Counter()
        digest = hashlib.sha256()
        collector = GcTimer()
        gc.callbacks.append(collector)
        sizes: dict[str, Counter[str]] = defaultdict(Counter)
        wall_started, cpu_started = clock(), time.process_time()
        for kind, item in items:
            if kind == "tick":
                kind = _tick_kind(steps, item)
            if args.sizes:
                logic = steps.customers.get(item.user)
                if logic is not None:
                    sizes[kind].update(_sizes(logic.state))  # type: ignore[attr-defined]
                    sizes[kind]["(reached)"] += 1
            started = clock()
            out = steps.feed(item)
            seconds[kind] += clock() - started
            counts[kind] += 1
            if args.digest:
                for record in out:
                    digest.update(repr(record).encode())
        started = clock()
        out = steps.finish()
        seconds["end of input"] += clock() - started
        # CPU microseconds, as bench.py reports them: wall time scaled by the round's CPU share
        # (on a shared machine another process's work otherwise lands in this one's figures).
        share = min(1.0, (time.process_time() - cpu_started) / (clock() - wall_started))
        seconds = defaultdict(float, {kind: share * s for kind, s in seconds.items()})
        gc.callbacks.remove(collector)
        counts["end of input"] = progress.users
        if args.digest:
            for record in out:
                digest.update(repr(record).encode())
        lines = sum(n for kind, n in counts.items() if not kind.startswith(("tick", "end of input")))
        figures = {kind: round(1e6 * seconds[kind] / n, 2) for kind, n in counts.items()}
        figures["per line (all kinds)"] = round(1e6 * sum(seconds.values()) / lines, 2)
        figures["CPU share"] = round(share, 3)
        print(round_, figures, *(["digest", digest.hexdigest()] if args.digest else []), flush=True)
        gc_us = round(1e6 * collector.seconds / lines, 2)
        print(round_, "items", dict(counts), "gc us per line", gc_us, "collections", collector.collections, flush=True)
        for kind, found in sizes.items():
            reached = found.pop("(reached)")
            print(
                round_, "sizes", kind, reached, {name: round(n / reached, 2) for name, n in found.items()}, flush=True
            )
        del steps, out
        gc.collect()


if __name__ == "__main__":
    main()
