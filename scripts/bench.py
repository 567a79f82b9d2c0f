#!/usr/bin/env python
"""Measure journeyflow's speed and memory; print figures, assert nothing.

Replay benchmark (default): generates N events (default 200k), then

* the floor: reading the file and ``orjson.loads`` of every line in one loop;
* the whole pipeline: ``journeyflow replay`` of the file, in this process,
  one worker, events/s and its ratio to the floor;
* per-stage costs: each step's logic driven directly, without bytewax, on the
  same events (parse, journey, models, audience), in microseconds per event;
* peak memory of the process and bytes of state per user (snapshot sizes),
  for all users and for idle ones (no open session left).

Machines are shared and noisy: read the ratios, which are measured in one
run, rather than absolute figures. ``--live`` measures the live worker
against a local Kafka-protocol broker and Redis instead (see bench_live.py);
``--recommendations`` what the recommender costs (see bench_recs.py).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.settings import Settings, load_settings  # noqa: E402
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from flows.journey import audience_config, journey_config, model_config  # noqa: E402
from flows.replay import replay  # noqa: E402
from journeyflow import generator  # noqa: E402
from journeyflow.events import DeadLetter, Event  # noqa: E402
from journeyflow.records import UserUpdate  # noqa: E402
from operators.rules import load_rules  # noqa: E402
from state.serde import encode_state  # noqa: E402

EVENTS_PER_USER_MONTH = 54  # what the generator writes per user in 30 days (measured)


def generate(events: int, workdir: Path, seed: int) -> Path:
    """Write about ``events`` generated events; return the file."""
    users = max(50, round(events / EVENTS_PER_USER_MONTH))
    path = workdir / f"bench-{events}-{seed}.jsonl"
    if not path.exists():
        generator.generate(generator.GeneratorConfig(users=users, days=30, seed=seed), path)
    return path


def floor(path: Path) -> tuple[int, float]:
    """Return (lines, seconds) of reading the file and parsing every line with orjson."""
    started = time.perf_counter()
    lines = 0
    for _, line, _ in read_lines(path):
        lines += 1
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    return lines, time.perf_counter() - started


def stages(path: Path, settings: Settings) -> dict[str, Any]:
    """Drive each step's logic directly; return microseconds per event and state sizes."""
    rules = load_rules(settings.rules_path)
    journey_cfg = journey_config(settings, rules, timers=False)
    models = model_config(settings).build(None)
    audience_cfg = audience_config(rules)
    clock = ReplayClock(settings.replay.tick_s * 1000, settings.replay.tick_window_s * 1000)

    started = time.perf_counter()
    parsed = [journey_cfg.parser.parse(line, f"bench:{n}") for n, line, _ in read_lines(path)]
    parse_s = time.perf_counter() - started
    items = list(replay_items(parsed, clock, ReplayProgress()))
    events = sum(1 for item in parsed if isinstance(item, Event))

    journeys: dict[str, Any] = {}
    updates: list[UserUpdate] = []
    started = time.perf_counter()
    for item in items:
        if isinstance(item, DeadLetter):
            continue
        user = item.user
        logic = journeys.get(user)
        if logic is None:
            logic = journeys[user] = journey_cfg.build(None)
        out, _ = logic.on_item(item)
        updates.extend(o for o in out if isinstance(o, UserUpdate))
    journey_s = time.perf_counter() - started

    started = time.perf_counter()
    scored = [o for u in updates for o in models.on_item(u)[0]]
    models_s = time.perf_counter() - started

    audiences: dict[str, Any] = {}
    started = time.perf_counter()
    for update in scored:
        logic = audiences.get(update.user_id)
        if logic is None:
            logic = audiences[update.user_id] = audience_cfg.build(None)
        logic.on_item(update)
    audience_s = time.perf_counter() - started

    sizes = [len(logic.snapshot()) for logic in journeys.values()]
    idle_states = [logic.state for logic in journeys.values() if not logic.state.sessions]
    idle = [len(encode_state(state)) for state in idle_states]
    parts = {
        name: round(sum(len(encode_state(getattr(state, name))) for state in idle_states) / max(1, len(idle_states)))
        for name in ("dedup", "profile", "pending", "cooldowns")
    }
    audience_sizes = [len(logic.snapshot()) for logic in audiences.values()]
    per_event = 1e6 / events
    return {
        "events": events,
        "items": len(items),
        "ticks_and_ends": len(items) - len(parsed),
        "updates_to_models": len(updates),
        "us_per_event": {
            "parse": round(parse_s * per_event, 2),
            "journey": round(journey_s * per_event, 2),
            "models": round(models_s * per_event, 2),
            "audience": round(audience_s * per_event, 2),
        },
        "us_per_update_in_models": round(models_s * 1e6 / max(1, len(updates)), 1),
        "users": len(journeys),
        "state_bytes_per_user": round(sum(sizes) / max(1, len(sizes))),
        "state_bytes_per_idle_user": round(sum(idle) / max(1, len(idle))),
        "idle_state_parts_bytes": parts,
        "audience_state_bytes_per_user": round(sum(audience_sizes) / max(1, len(audience_sizes))),
        "model_state_bytes": len(models.snapshot()),
    }


def run_replay(path: Path, settings: Settings, workdir: Path) -> dict[str, Any]:
    """Replay the file through the real dataflow; return its summary."""
    return replay([path], workdir / "replay", settings, show_progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events to generate (default 200000)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="keep generated data and outputs here")
    parser.add_argument("--config", help="settings file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--live", action="store_true", help="benchmark the live worker (Kafka, Redis)")
    parser.add_argument(
        "--recommendations", action="store_true", help="what the recommender costs (see bench_recs.py)"
    )
    args, rest = parser.parse_known_args(argv)
    if args.recommendations:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_recs import main as recs_main  # type: ignore[import-not-found]

        return int(recs_main([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--recommendations"]))
    if args.live:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_live import main as live_main  # type: ignore[import-not-found]

        # The live benchmark has options of its own: hand it everything but --live.
        return int(live_main([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--live"]))
    settings = load_settings(args.config)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journeyflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = generate(args.events, workdir, args.seed)

    lines, floor_s = floor(path)
    gc.collect()
    summary = run_replay(path, settings, workdir)
    pipeline_s = summary["elapsed_s"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.collect()
    staged = stages(path, settings)

    figures = {
        "lines": lines,
        "floor_lines_per_s": round(lines / floor_s),
        "pipeline_lines_per_s": round(lines / pipeline_s),
        "pipeline_to_floor_ratio": round(floor_s / pipeline_s, 3),
        "pipeline_us_per_line": round(pipeline_s * 1e6 / lines, 1),
        "peak_rss_mb": round(peak_mb),
        # report.html is built after the flow (not in elapsed_s): its cost against the replay's.
        "report_s": summary["report"]["elapsed_s"],
        "report_share_of_replay": round(summary["report"]["elapsed_s"] / pipeline_s, 4),
        **staged,
    }
    print(f"journeyflow replay benchmark: {lines:,} lines ({figures['events']:,} valid events, {figures['users']:,} users)")
    print(f"  floor (read + orjson.loads)   {figures['floor_lines_per_s']:>10,} lines/s")
    print(
        f"  whole pipeline (1 worker)     {figures['pipeline_lines_per_s']:>10,} lines/s"
        f"   = {figures['pipeline_to_floor_ratio']:.3f} x floor ({figures['pipeline_us_per_line']} us/line)"
    )
    print(f"  report.html after the replay   {figures['report_s']:>9.2f} s   = {figures['report_share_of_replay']:.1%} of the replay")
    print("  per stage, without bytewax (us per event):")
    for stage, cost in figures["us_per_event"].items():
        print(f"    {stage:10} {cost:8.2f}")
    print(
        f"  ({figures['ticks_and_ends']:,} ticks and ends of input woven in; "
        f"{figures['updates_to_models']:,} updates reached the models, {figures['us_per_update_in_models']} us each)"
    )
    print(f"  peak memory (RSS)             {figures['peak_rss_mb']:>10,} MB")
    print(
        f"  state per user (snapshot)     {figures['state_bytes_per_user']:>10,} B"
        f"   idle users {figures['state_bytes_per_idle_user']:,} B, audience {figures['audience_state_bytes_per_user']:,} B,"
        f" models {figures['model_state_bytes']:,} B in all"
    )
    print(
        "  idle user's state by part      "
        + ", ".join(f"{name} {size:,} B" for name, size in figures["idle_state_parts_bytes"].items())
    )
    if args.json:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
