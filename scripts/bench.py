#!/usr/bin/env python
"""Measure journeyflow's speed and memory; print tables that explain themselves.

``python scripts/bench.py [--events 200000] [--large 1000000] [--quick] [--json FILE]``
generates a small and a large file shaped like issue 8's (10 and 12.5 lines
per user: 20k users for 200k lines, 80k users for 1M) and, for each, in a
fresh process per measurement (see ``bench_measure.py``):

* two floors: ``orjson`` (read the file, ``orjson.loads`` every line) and the
  engine (a trivial bytewax flow with the replay's source and sinks and one
  pass-through keyed step);
* the whole ``journeyflow replay`` command: lines per second, the share of
  its time spent collecting garbage, resident memory per user;
* every step's logic driven without bytewax, in the flow's order: microseconds
  per item by kind (view, cart, purchase, tick, end of input...) and step, the
  share of ticks and the end of input, and (small file) the journey step's
  inner parts;
* ``journeyflow replay --processes 2`` against 1, when the command has it.

Each figure with a target (issue 8, "Done when") gets a verdict. The machine
is shared and noisy: compare figures measured in the same run (ratios), not
across runs. Run it alone: ``flock /tmp/bench.lock python scripts/bench.py``.
``--live`` measures the live worker instead (``bench_live.py``),
``--recommendations`` what the recommender costs (``bench_recs.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_figures import derive, verdicts  # noqa: E402
from bench_report import render  # noqa: E402
from journeyflow import generator  # noqa: E402
from journeyflow.compiled import PURE_VARIABLE  # noqa: E402

__all__ = ["generate", "generate_shaped", "main"]

EVENTS_PER_USER_MONTH = 54  # what the generator writes per user in 30 days (measured)
LINES_PER_USER_DAY = 2.1  # the same over a week: 14,663 lines for 1,000 users in 7 days (measured)
# Issue 8's files: 200k lines from 20k users, 1M lines from 80k users (its targets are for the latter).
SMALL_LINES_PER_USER = 10.0
LARGE_LINES_PER_USER = 12.5
QUICK_EVENTS = (2_000, 8_000)  # --quick: small and large, a smoke run of every measurement


def generate(events: int, workdir: Path, seed: int) -> Path:
    """Write about ``events`` generated events over 30 days; return the file.

    The shape the live and recommender benchmarks use (``bench_live.py``, ``bench_recs.py``).
    """
    users = max(50, round(events / EVENTS_PER_USER_MONTH))
    path = workdir / f"bench-{events}-{seed}.jsonl"
    if not path.exists():
        generator.generate(generator.GeneratorConfig(users=users, days=30, seed=seed), path)
    return path


def generate_shaped(events: int, lines_per_user: float, workdir: Path, seed: int) -> tuple[Path, int, int]:
    """Write about ``events`` lines from ``events / lines_per_user`` users; return (file, users, days).

    The period is as long as those users take to write that many lines.
    """
    users = max(20, round(events / lines_per_user))
    days = max(1, round(lines_per_user / LINES_PER_USER_DAY))
    path = workdir / f"bench-{events}-{users}u-{days}d-{seed}.jsonl"
    if not path.exists():
        generator.generate(generator.GeneratorConfig(users=users, days=days, seed=seed), path)
    return path, users, days


def _measure(
    kind: str, path: Path, workdir: Path, config: str | None, extra: tuple[str, ...] = (), *, pure: bool = False
) -> dict[str, Any]:
    """Run one measurement of ``bench_measure.py`` in a fresh process; return its figures.

    ``pure`` runs the source of the mypyc-compiled modules (``journeyflow.compiled``).
    """
    tag = f"{path.stem}-{kind}{''.join(extra).replace('-', '_')}"
    result = workdir / f"{tag}.json"
    out = workdir / f"out-{tag}"
    command = [sys.executable, str(HERE / "bench_measure.py"), kind, str(path), str(result), "--out", str(out)]
    command += ["--config", config] if config else []
    command += ["--", *extra] if extra else []
    env = {**os.environ, PURE_VARIABLE: "1"} if pure else None
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0 or not result.exists():
        msg = (
            f"measurement {kind} of {path.name} must exit 0; got {done.returncode} instead:\n{done.stderr[-3000:]}"
        )
        raise RuntimeError(msg)
    return dict(orjson.loads(result.read_bytes()))


def measure_file(path: Path, workdir: Path, config: str | None, *, probes: bool) -> dict[str, Any]:
    """Return every figure of one file (floors, replay, parts, and optionally the journey's inner parts)."""
    figures = {
        "orjson": _measure("orjson", path, workdir, config),
        "engine": _measure("engine", path, workdir, config),
        "replay": _measure("replay", path, workdir, config),
        "parts": _measure("parts", path, workdir, config),
    }
    if probes:
        # The probes wrap module functions, which calls between compiled modules bypass:
        # the journey step's inner parts are timed on the source.
        figures["probes"] = _measure("probes", path, workdir, config, pure=True)
    return figures


def has_processes() -> bool:
    """Return whether ``journeyflow replay`` takes ``--processes`` (another change adds it)."""
    from journeyflow import cli

    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        cli.main(["replay", "--help"])
    return "--processes" in text.getvalue()


def measure_processes(path: Path, workdir: Path, config: str | None) -> dict[str, Any]:
    """Return whole-command seconds of ``--processes 1`` and ``2`` on ``path``, or that it is not available."""
    if not has_processes():
        return {"available": False}
    runs = {n: _measure("replay", path, workdir, config, ("--processes", str(n))) for n in (1, 2)}
    return {
        "available": True,
        "lines": runs[1]["lines"],
        "wall_s": {str(n): run["wall_s"] for n, run in runs.items()},
        "flow_s": {str(n): run["flow_s"] for n, run in runs.items()},
        "same_counts": all(runs[1][k] == runs[2][k] for k in ("lines", "events", "users")),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The live and recommender benchmarks have options of their own: hand them everything else.
    if "--recommendations" in argv:
        from bench_recs import main as recs_main  # type: ignore[import-not-found]

        return int(recs_main([a for a in argv if a != "--recommendations"]))
    if "--live" in argv:
        from bench_live import main as live_main  # type: ignore[import-not-found]

        return int(live_main([a for a in argv if a != "--live"]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="lines of the small file (default 200000)")
    parser.add_argument(
        "--large", type=int, default=1_000_000, help="lines of the large file (default 1000000; 0: none)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke run: {QUICK_EVENTS[0]:,} and {QUICK_EVENTS[1]:,} lines"
    )
    parser.add_argument("--seed", type=int, default=5, help="generator seed (default 5)")
    parser.add_argument("--workdir", type=Path, help="keep generated data and outputs here (default: a new one)")
    parser.add_argument("--config", help="settings file")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE (JSON)")
    parser.add_argument("--tables", type=Path, metavar="FILE", help="print a --json FILE's tables; measure nothing")
    parser.add_argument("--live", action="store_true", help="the live worker (Kafka, Redis); see bench_live.py")
    parser.add_argument("--recommendations", action="store_true", help="what the recommender costs; see bench_recs.py")
    args = parser.parse_args(argv)
    if args.tables is not None:
        saved = orjson.loads(args.tables.read_bytes())
        saved["verdicts"] = verdicts(saved)  # judged by this checkout's targets
        print(render(saved))
        return 0
    small_n, large_n = QUICK_EVENTS if args.quick else (args.events, args.large)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journeyflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    figures: dict[str, Any] = {"quick": args.quick, "files": {}}
    shapes = [("small", small_n, SMALL_LINES_PER_USER)]
    if large_n:
        shapes.append(("large", large_n, LARGE_LINES_PER_USER))
    for label, events, per_user in shapes:
        path, users, days = generate_shaped(events, per_user, workdir, args.seed)
        print(f"bench: {label} file {path.name}: measuring...", file=sys.stderr, flush=True)
        measured = measure_file(path, workdir, args.config, probes=label == "small")
        measured["file"] = {"name": path.name, "users_generated": users, "days": days, "bytes": path.stat().st_size}
        figures["files"][label] = measured
    small_path = workdir / figures["files"]["small"]["file"]["name"]
    print("bench: --processes 1 and 2 on the small file...", file=sys.stderr, flush=True)
    figures["processes"] = measure_processes(small_path, workdir, args.config)
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    figures["derived"] = {label: derive(f) for label, f in figures["files"].items()}
    figures["verdicts"] = verdicts(figures)
    print(render(figures))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
