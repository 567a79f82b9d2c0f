"""Replay recorded event files through the journeyflow dataflow.

``journeyflow replay INPUT... --out DIR`` runs :func:`replay`: the same flow as
the live worker (:func:`flows.journey.build_flow`) with file inputs and JSON
Lines outputs, then writes ``summary.json``. Every line read is accounted for:
``read == processed + duplicates + dead_letters``.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow

from config.settings import Settings
from flows.files import (
    JsonLinesSink,
    ReplayProgress,
    ReplaySource,
    TallySink,
    combine_parts,
    print_progress,
)
from flows.journey import Outputs, build_flow, event_parser
from journeyflow.events import DeadLetter, format_ts, parse_ts

__all__ = ["replay", "format_summary", "OUTPUT_FILES"]

OUTPUT_FILES = {
    "sessions": "sessions.jsonl",
    "dead_letters": "dead_letters.jsonl",
}


def _dead_letter_order(record: dict[str, Any]) -> tuple[str, int]:
    path, _, line = record["source"].rpartition(":")
    return (path, int(line)) if line.isdigit() else (record["source"], 0)


def _session_order(record: dict[str, Any]) -> tuple[int, str, str]:
    return parse_ts(record["start"]), record["user_id"], record["session_id"]


def replay(
    inputs: list[Path],
    out_dir: Path,
    settings: Settings,
    *,
    workers: int = 1,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Replay ``inputs`` into ``out_dir`` and return the summary (also in summary.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.part-*"):
        stale.unlink()
    progress = ReplayProgress(report=print_progress if show_progress else None)
    source = ReplaySource(inputs, event_parser(settings), progress)
    sessions = JsonLinesSink(out_dir, OUTPUT_FILES["sessions"])
    dead_letters = JsonLinesSink(out_dir, OUTPUT_FILES["dead_letters"], count_by=lambda d: d.code)
    tallies = TallySink()

    def read_files(flow: Dataflow) -> Any:
        read = op.input("read", flow, source)
        # Event | DeadLetter | EndOfInput
        split = op.branch("split_dead_letters", read, lambda item: isinstance(item, DeadLetter))
        keyed = op.key_on("key_by_user", split.falses, lambda item: item.user)
        # (user, Event | EndOfInput)
        return keyed, split.trues

    outputs = Outputs(sessions=sessions, dead_letters=dead_letters, tallies=tallies)
    flow = build_flow(settings, read_files, outputs, timers=False)
    started = time.monotonic()
    cli_main(
        flow,
        workers_per_process=workers,
        epoch_interval=timedelta(seconds=settings.run.epoch_s),
    )
    elapsed = time.monotonic() - started

    combine_parts(out_dir, OUTPUT_FILES["sessions"], _session_order)
    combine_parts(out_dir, OUTPUT_FILES["dead_letters"], _dead_letter_order)
    totals = tallies.totals
    dead_by_code = dead_letters.counts
    dead_total = dead_by_code.pop("total", 0)
    summary: dict[str, Any] = {
        "inputs": [str(p) for p in inputs],
        "read": progress.read,
        "processed": totals["processed"],
        "duplicates": totals["duplicates"],
        "dead_letters": dead_total,
        "late": dead_by_code.get("late", 0),
        "skipped_no_consent": totals["skipped"],
        "sessions": sessions.counts["total"],
        "users": len(tallies.users),
        "dead_letters_by_reason": dict(sorted(dead_by_code.items())),
        "last_event_time": format_ts(progress.last_ts_ms) if progress.last_ts_ms else None,
        "elapsed_s": round(elapsed, 3),
        "events_per_second": round(progress.read / elapsed) if elapsed > 0 else None,
        "workers": workers,
    }
    summary["accounted"] = summary["read"] == (
        summary["processed"] + summary["duplicates"] + summary["dead_letters"]
    )
    (out_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
    )
    if not summary["accounted"]:
        print(
            "journeyflow: WARNING: read != processed + duplicates + dead_letters",
            file=sys.stderr,
        )
    return summary


def format_summary(summary: dict[str, Any], out_dir: Path) -> str:
    """Return the end-of-replay summary for a person to read at a glance."""
    lines = [
        f"replayed {summary['read']:,} lines in {summary['elapsed_s']:.1f} s "
        f"({summary['events_per_second'] or 0:,} lines/s, {summary['workers']} worker(s))",
        f"  processed     {summary['processed']:>10,}   users {summary['users']:,}",
        f"  duplicates    {summary['duplicates']:>10,}",
        f"  dead letters  {summary['dead_letters']:>10,}   "
        + ", ".join(f"{k} {v:,}" for k, v in summary["dead_letters_by_reason"].items()),
        f"  sessions      {summary['sessions']:>10,}",
    ]
    if summary.get("skipped_no_consent"):
        lines.append(f"  no consent    {summary['skipped_no_consent']:>10,}   (not profiled)")
    lines.append(f"  every line accounted for: {'yes' if summary['accounted'] else 'NO'}")
    lines.append(f"outputs in {out_dir}/ (summary.json, {', '.join(OUTPUT_FILES.values())})")
    return "\n".join(lines)
