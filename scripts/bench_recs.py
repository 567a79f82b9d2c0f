#!/usr/bin/env python
"""Measure what the recommender costs; print figures, assert nothing.

``python scripts/bench.py --recommendations [--events 200000] [--rounds 2]``:

* the whole pipeline replayed with the recommender off and on, alternately
  (``--rounds`` times each, each replay in a fresh process), events/s and their ratio;
* the recommender's steps (catalog, then each customer's list) driven directly, without bytewax, on the
  asks the journey step makes for the same events: microseconds per event
  and per product event;
* state: bytes per product (the catalog step's snapshot: successors and
  popularity) and per customer list.

Run it alone on the machine (``flock /tmp/bench.lock ...``) and read the ratio.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import generate  # type: ignore[import-not-found]  # noqa: E402

from config.settings import Settings, load_settings  # noqa: E402
from flows.files import REPLAY_BATCH, ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from flows.step_configs import journey_config  # noqa: E402
from flows.recommend import recommend_config  # noqa: E402
import flows.replay as replay_module  # noqa: E402
from flows.replay import replay  # noqa: E402
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.step_records import Expect  # noqa: E402
from operators.recommend import RecAsk  # noqa: E402
from operators.recommend_steps import Chain  # noqa: E402
from operators.rules import load_rules  # noqa: E402


_report_cpu: list[float] = []



def _timed_report(*args: Any, **kwargs: Any) -> Any:
    """``write_report``, its CPU seconds noted: report.html is not part of the replay's rate."""
    started = time.process_time()
    try:
        return _write_report(*args, **kwargs)
    finally:
        _report_cpu.append(time.process_time() - started)


_write_report = replay_module.write_report
replay_module.write_report = _timed_report


def replay_once(path: Path, enabled: bool, out: Path) -> dict[str, float]:
    """Replay ``path`` once, recommender on or off; return lines read, flow seconds and CPU seconds."""
    settings = load_settings(overrides={"recommendations": {"enabled": enabled}})
    gc.collect()
    # CPU seconds too: other jobs on a shared machine slow the wall clock of one run
    # and not the next, much less the CPU time it takes.
    cpu_started = time.process_time()
    summary = replay([path], out, settings, show_progress=False)
    cpu_s = time.process_time() - cpu_started - _report_cpu.pop()
    return {"read": summary["read"], "elapsed_s": summary["elapsed_s"], "cpu_s": cpu_s}


def replays(path: Path, workdir: Path, rounds: int) -> dict[str, Any]:
    """Replay with the recommender off and on, alternately, each in a fresh process.

    A fresh process per replay: one replay's heap, caches and garbage do not
    weigh on the next (in one process, the same code's ratio moved by 0.06
    from run to run).
    """
    runs: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name in ("off", "on"):
            command = [sys.executable, __file__, "--one", name, str(path), str(workdir / f"replay-{name}")]
            found = orjson.loads(subprocess.run(command, check=True, capture_output=True).stdout.splitlines()[-1])
            cpu[name].append(found["cpu_s"])
            runs[name].append(found["read"] / found["elapsed_s"])
    ratio = statistics.median(runs["on"]) / statistics.median(runs["off"])
    cpu_ratio = statistics.median(cpu["off"]) / statistics.median(cpu["on"])
    return {
        "lines_per_s": {k: [round(x) for x in v] for k, v in runs.items()},
        "on_to_off": round(ratio, 3),
        "cpu_s": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "cpu_on_to_off": round(cpu_ratio, 3),
    }


def steps(path: Path, settings: Settings) -> dict[str, Any]:
    """Drive the recommender's steps on the journey step's asks; return costs and sizes."""
    cfg = recommend_config(settings)
    assert cfg is not None
    journey_cfg = journey_config(settings, load_rules(settings.rules_path), timers=False)
    clock = ReplayClock.from_settings(settings)
    parsed = [journey_cfg.parser.parse(line, f"bench:{n}") for n, line, _ in read_lines(path)]
    events = sum(1 for p in parsed if not isinstance(p, DeadLetter))
    journeys: dict[str, Any] = {}
    # The asks of each batch of the replay's input (flows/files.py reads REPLAY_BATCH lines at a time),
    # driven a batch at a time as the flow's steps take them.
    batches: list[list[RecAsk]] = []
    for n, item in enumerate(replay_items(parsed, clock, ReplayProgress())):
        if n % REPLAY_BATCH == 0:
            batches.append([])
        if isinstance(item, (DeadLetter, Expect)):
            continue  # Expect: in input order here already, nothing to wait for
        logic = journeys.get(item.user)
        if logic is None:
            logic = journeys[item.user] = journey_cfg.build(None)
        batches[-1].extend(o for o in logic.on_item(item)[0] if isinstance(o, RecAsk))
    asks = [ask for batch in batches for ask in batch]

    chain = Chain(cfg)
    started = time.perf_counter()
    for batch in batches:
        chain.batch(batch)
    elapsed = time.perf_counter() - started
    products = len(chain.catalog.state.popularity.counts)
    product_bytes = len(chain.catalog.snapshot())
    list_sizes = [len(logic.snapshot()) for logic in chain.lists.values()]
    return {
        "events": events,
        "product_events": len(asks),
        "us_per_event": round(elapsed * 1e6 / max(1, events), 2),
        "us_per_product_event": round(elapsed * 1e6 / max(1, len(asks)), 2),
        "products": products,
        "state_bytes_per_product": round(product_bytes / max(1, products)),
        "list_state_bytes_per_customer": round(sum(list_sizes) / max(1, len(list_sizes))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events to generate (default 200000)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="replays with and without, each (default 2)")
    parser.add_argument("--workdir", type=Path, help="keep generated data and outputs here")
    parser.add_argument("--one", nargs=3, metavar=("off|on", "FILE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        # One replay of the comparison, in its own process (see replays).
        name, file, out = args.one
        print(orjson.dumps(replay_once(Path(file), name == "on", Path(out))).decode())
        return 0
    settings = load_settings(overrides={"recommendations": {"enabled": True}})
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journeyflow-bench-recs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = generate(args.events, workdir, args.seed)
    staged = steps(path, settings)
    compared = replays(path, workdir, args.rounds)
    print(f"recommender benchmark: {staged['events']:,} events, {staged['product_events']:,} product events")
    print(
        f"  whole pipeline, lines/s       off {compared['lines_per_s']['off']}  on {compared['lines_per_s']['on']}"
        f"   on/off = {compared['on_to_off']:.3f} (medians)"
    )
    print(
        f"  whole replay, CPU seconds     off {compared['cpu_s']['off']}  on {compared['cpu_s']['on']}"
        f"   off/on = {compared['cpu_on_to_off']:.3f} (medians; report.html left out)"
    )
    print(
        f"  recommender steps alone       {staged['us_per_event']} us per event"
        f" ({staged['us_per_product_event']} us per product event), without bytewax"
    )
    print(
        f"  state                         {staged['state_bytes_per_product']:,} B per product"
        f" ({staged['products']:,} products), {staged['list_state_bytes_per_customer']:,} B per customer list"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
