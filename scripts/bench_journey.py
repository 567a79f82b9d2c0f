#!/usr/bin/env python
"""Time the per-user steps alone (device and customer journey steps), per kind of item.

``python scripts/bench_journey.py FILE [--rounds N] [--digest]``: the replay's items of
FILE (events and ticks; dead letters left out) are parsed first, then fed to
:class:`flows.inprocess.PerUserSteps` as the flow routes them, and each item's time is
charged to its kind (page and product views apart), the end of input to every user.
Unlike ``bench_measure.py parts`` no other step runs, so the figures are the step's own
work without the others' caches and garbage. ``--digest`` prints a digest of every record
the steps emit (their ``repr``), to compare two builds' outputs quickly. Run it under
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

from bench_measure import kind_of  # type: ignore[import-not-found]  # noqa: E402

from config.settings import load_settings  # noqa: E402
from flows import runtime  # noqa: E402
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from flows.inprocess import PerUserSteps  # noqa: E402
from flows.step_configs import event_parser, journey_config  # noqa: E402
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.step_records import Expect  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--digest", action="store_true", help="print a digest of the records emitted")
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
        for kind, item in items:
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
        counts["end of input"] = progress.users
        if args.digest:
            for record in out:
                digest.update(repr(record).encode())
        lines = sum(n for kind, n in counts.items() if kind not in ("tick", "end of input"))
        figures = {kind: round(1e6 * seconds[kind] / n, 2) for kind, n in counts.items()}
        figures["per line (all kinds)"] = round(1e6 * sum(seconds.values()) / lines, 2)
        print(round_, figures, *(["digest", digest.hexdigest()] if args.digest else []), flush=True)
        del steps, out
        gc.collect()


if __name__ == "__main__":
    main()
