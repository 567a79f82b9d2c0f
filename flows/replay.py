"""Replay recorded event files through the journeyflow dataflow.

``journeyflow replay INPUT... --out DIR`` runs :func:`replay`: the same flow as
the live worker (:func:`flows.journey.build_flow`) with file inputs and JSON
Lines outputs, then writes ``summary.json``. Every line read is accounted for:
``read == processed + duplicates + dead_letters``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow

from config.settings import Settings
from flows.files import (
    CollectSink,
    JsonLinesSink,
    ReplayClock,
    ReplayProgress,
    ReplaySource,
    TallySink,
    combine_parts,
    print_progress,
)
from flows.journey import Outputs, build_flow, event_parser
from flows.processes import Collected, free_addresses, start_workers, stop_workers, wait_workers
from flows.uplift_report import format_uplift, loop_summary
from flows.recommend import QualitySink
from flows.replay_shares import ReplayShares
from flows.runtime import execute
from journeyflow import metrics
from journeyflow.events import DeadLetter, format_ts, parse_ts
from journeyflow.evaluation import model_quality, read_truth
from journeyflow.records import ModelReport
from journeyflow.report import write_report

__all__ = ["replay", "format_summary", "OUTPUT_FILES"]

MODELS_FILE = "models.bin"

OUTPUT_FILES = {
    "sessions": "sessions.jsonl",
    "dead_letters": "dead_letters.jsonl",
    "segment_changes": "segment_changes.jsonl",
    "triggers": "triggers.jsonl",
    "holdouts": "holdouts.jsonl",
    "conversions": "conversions.jsonl",
    "profiles": "profiles.jsonl",
}


def _dead_letter_order(record: dict[str, Any]) -> tuple[str, int]:
    path, _, line = record["source"].rpartition(":")
    return (path, int(line)) if line.isdigit() else (record["source"], 0)


def _session_order(record: dict[str, Any]) -> tuple[int, str, str]:
    return parse_ts(record["start"]), record["user_id"], record["session_id"]


def _time_order(record: dict[str, Any]) -> tuple[int, str]:
    # Stable: one user's records at the same time keep the order they were made in.
    return parse_ts(record["ts"]), record["user_id"]


def _change_order(record: dict[str, Any]) -> tuple[int, str, bool]:
    # An identity merge and the changes its login caused reach the file along
    # two paths of the flow: the merge goes first, whatever arrived first.
    return parse_ts(record["ts"]), record["user_id"], record["kind"] != "merge"


def _user_order(record: dict[str, Any]) -> str:
    return record["user_id"]


_ORDER = {
    "sessions": _session_order,
    "dead_letters": _dead_letter_order,
    "segment_changes": _change_order,
    "triggers": _time_order,
    "holdouts": _time_order,
    "conversions": _time_order,
    "profiles": _user_order,
}


def replay(
    inputs: list[Path],
    out_dir: Path,
    settings: Settings,
    *,
    workers: int = 1,
    processes: int = 1,
    show_progress: bool = True,
    store: Any = None,
    truth: Path | None = None,
) -> dict[str, Any]:
    """Replay ``inputs`` into ``out_dir`` and return the summary (also in summary.json).

    With ``truth`` (the generator's ground truth), the summary also judges the
    models' final scores and clusters against it (``models.quality``). With
    ``processes`` > 1 the replay runs as a cluster of that many processes on
    this machine (see :mod:`flows.processes`).
    """
    if processes < 1:
        msg = f"processes must be >= 1; got {processes} instead"
        raise ValueError(msg)
    if processes > 1 and store is not None:
        msg = f"a replay into Redis must run in one process; got --processes {processes} instead"
        raise ValueError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob(".*.part-*"), *out_dir.glob(".process*.pkl")]:
        stale.unlink()
    started = time.monotonic()
    if processes == 1:
        collected = _run_process(inputs, out_dir, settings, workers=workers, show_progress=show_progress, store=store)
    else:
        addresses = free_addresses(processes)
        job = {
            "run": _run_process,
            "inputs": inputs,
            "out_dir": out_dir,
            "settings": settings,
            "workers": workers,
            "show_progress": False,
            "addresses": addresses,
        }
        children = start_workers(job, processes, out_dir)
        try:
            collected = _run_process(
                inputs, out_dir, settings, workers=workers, show_progress=show_progress, addresses=addresses
            )
            for other in wait_workers(children, out_dir):
                collected.add(other)
        finally:
            stop_workers(children)
    elapsed = time.monotonic() - started

    for name, file in OUTPUT_FILES.items():
        combine_parts(out_dir, file, _ORDER[name])
    counts = {name: Counter(found) for name, found in collected.counts.items()}
    totals = collected.totals
    dead_by_code = counts["dead_letters"]
    dead_total = dead_by_code.pop("total", 0)
    triggers = counts["triggers"]
    holdouts = counts["holdouts"]
    # Every process's sums in one sink, so that its summary covers the cluster.
    rec_quality = QualitySink()
    rec_quality._parts.extend(collected.rec_parts)
    summary: dict[str, Any] = {
        "inputs": [str(p) for p in inputs],
        "read": collected.read,
        "processed": totals.get("processed", 0),
        "duplicates": totals.get("duplicates", 0),
        "dead_letters": dead_total,
        "late": dead_by_code.get("late", 0),
        "skipped_no_consent": totals.get("skipped", 0),
        "sessions": counts["sessions"]["total"],
        "users": len(collected.users),
        "profiles": counts["profiles"]["total"],
        "segment_changes": counts["segment_changes"].get("SegmentChange", 0),
        "tombstones": counts["segment_changes"].get("Tombstone", 0),
        "identity_merges": counts["segment_changes"].get("IdentityMerge", 0),
        "triggers": triggers.pop("total", 0),
        "triggers_by_rule": dict(sorted(triggers.items())),
        "holdouts": holdouts.pop("total", 0),
        "segments": segment_sizes(out_dir / OUTPUT_FILES["profiles"]),
        "dead_letters_by_reason": dict(sorted(dead_by_code.items())),
        # Rules that failed at run time (treated as false), evaluations per rule.
        "rule_errors": dict(sorted(collected.rule_errors.items())),
        "last_event_time": format_ts(collected.last_ts_ms) if collected.last_ts_ms else None,
        "elapsed_s": round(elapsed, 3),
        "events_per_second": round(collected.read / elapsed) if elapsed > 0 else None,
        "workers": workers,
        "processes": processes,
    }
    summary["models"] = _model_summary(collected.reports, out_dir)
    if truth is not None and summary["models"]:
        summary["models"]["quality"] = model_quality(
            out_dir / OUTPUT_FILES["profiles"], read_truth(truth), settings.models.churn_horizon_s / 86400
        )
    summary.update(loop_summary(collected.loop_reports))
    if settings.recommendations.enabled:
        summary["recommendations"] = rec_quality.summary()
    summary["accounted"] = summary["read"] == (
        summary["processed"] + summary["duplicates"] + summary["dead_letters"]
    )
    (out_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
    )
    # The report is built from the outputs after the flow (so it costs the flow nothing),
    # once summary.json is there: should it fail, the outputs are complete all the same.
    report = write_report(out_dir, summary=summary, show_progress=show_progress)
    summary["report"] = {"file": report.path.name, "elapsed_s": report.elapsed_s}
    (out_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
    )
    if not summary["accounted"]:
        print(
            "journeyflow: WARNING: read != processed + duplicates + dead_letters",
            file=sys.stderr,
        )
    return summary


def _run_process(
    inputs: list[Path],
    out_dir: Path,
    settings: Settings,
    *,
    workers: int,
    show_progress: bool,
    store: Any = None,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> Collected:
    """Run this process's share of the replay; return what its in-memory sinks gathered."""
    progress = ReplayProgress(report=print_progress if show_progress else None)
    clock = ReplayClock.from_settings(settings)
    source: Any = ReplaySource(inputs, event_parser(settings), progress, clock)
    if addresses is not None:  # a cluster: each process reads the input and keeps its own users' items
        source = ReplayShares(inputs, event_parser(settings), progress, clock, processes=len(addresses))
    counted_by = {
        "dead_letters": lambda d: d.code,
        "segment_changes": lambda c: type(c).__name__,
        "triggers": lambda t: t.rule,
        "holdouts": lambda t: t.rule,
    }
    sinks = {
        name: JsonLinesSink(out_dir, file, count_by=counted_by.get(name))
        for name, file in OUTPUT_FILES.items()
    }
    tallies = TallySink()
    reports = CollectSink()
    loop_reports = CollectSink()
    rec_quality = QualitySink()

    def read_files(flow: Dataflow) -> Any:
        read = op.input("read", flow, source)
        # Event | DeadLetter | Tick
        split = op.branch("split_dead_letters", read, lambda item: isinstance(item, DeadLetter))
        keyed = op.key_on("key_by_user", split.falses, lambda item: item.user)
        # (user, Event | Tick)
        return keyed, split.trues

    outputs = Outputs(**sinks, store=store, tallies=tallies, models=reports, loop_report=loop_reports, recommendations=rec_quality)
    flow = build_flow(settings, read_files, outputs, live=False)
    errors_before = metrics.rule_error_counts()
    cluster = {} if addresses is None else {"process_id": process_id or 0, "addresses": addresses}
    execute(flow, workers_per_process=workers, epoch_interval=timedelta(seconds=settings.run.epoch_s), **cluster)
    return Collected(
        read=progress.read,
        last_ts_ms=progress.last_ts_ms,
        counts={name: dict(sink.counts) for name, sink in sinks.items()},
        totals=dict(tallies.totals),
        users=tallies.users,
        reports=reports.items,
        loop_reports=loop_reports.items,
        rec_parts=list(rec_quality._parts),
        rule_errors=_rule_errors_since(errors_before),
    )


def _rule_errors_since(before: dict[str, int]) -> dict[str, int]:
    after = metrics.rule_error_counts()
    return {rule: n - before.get(rule, 0) for rule, n in sorted(after.items()) if n > before.get(rule, 0)}


def _model_summary(reports: list[ModelReport], out_dir: Path) -> dict[str, Any]:
    """Return the models' figures for the summary; export their state to models.bin."""
    if not reports:
        return {}
    (report,) = reports
    if report.state is not None:
        (out_dir / MODELS_FILE).write_bytes(report.state)
    return {
        "model_version": report.model_version,
        "scored": report.scored,
        "tasks": report.tasks,
        "clusters": report.clusters,
        "silhouette": report.silhouette,
        "exported": MODELS_FILE if report.state is not None else None,
    }


def segment_sizes(profiles: Path) -> dict[str, int]:
    """Return how many users each segment holds at the end, from ``profiles.jsonl``."""
    sizes: dict[str, int] = {}
    with profiles.open("rb") as fh:
        for line in fh:
            for segment in orjson.loads(line).get("segments", ()):
                sizes[segment] = sizes.get(segment, 0) + 1
    return dict(sorted(sizes.items()))


def format_summary(summary: dict[str, Any], out_dir: Path) -> str:
    """Return the end-of-replay summary for a person to read at a glance."""
    lines = [
        f"replayed {summary['read']:,} lines in {summary['elapsed_s']:.1f} s "
        f"({summary['events_per_second'] or 0:,} lines/s, {summary['workers']} worker(s)"
        + (f" in each of {summary['processes']} processes)" if summary.get('processes', 1) > 1 else ")"),
        # Units named in each line (issue 16); "users" are keys: user ids plus the anonymous
        # ids of visitors never linked to one (docs/operations.md, "Reading a replay summary").
        f"  processed     {summary['processed']:>10,}   events; users {summary['users']:,} "
        "(user ids + anonymous ids)",
        f"  duplicates    {summary['duplicates']:>10,}   events dropped (event_id seen before)",
        f"  dead letters  {summary['dead_letters']:>10,}   lines: "
        + ", ".join(f"{k} {v:,}" for k, v in summary["dead_letters_by_reason"].items()),
        f"  sessions      {summary['sessions']:>10,}   closed",
        f"  segment changes {summary['segment_changes']:>8,}   tombstones {summary['tombstones']:,}, "
        f"identity merges {summary['identity_merges']:,} (anonymous devices joined to customers)",
        f"  triggers      {summary['triggers']:>10,}   "
        + ", ".join(f"{k} {v:,}" for k, v in summary["triggers_by_rule"].items())
        + (f"   (+{summary['holdouts']:,} held out)" if summary["holdouts"] else ""),
        f"  profiles      {summary['profiles']:>10,}   in segments: "
        + ", ".join(f"{k} {v:,}" for k, v in summary["segments"].items()),
    ]
    if summary.get("skipped_no_consent"):
        lines.append(
            f"  no consent    {summary['skipped_no_consent']:>10,}   events of users who refused personalisation "
            "or of devices of erased customers (not profiled)"
        )
    if summary["rule_errors"]:
        lines.append(
            "  rule errors   "
            + ", ".join(f"{k} {v:,}" for k, v in summary["rule_errors"].items())
            + "   (evaluations that failed at run time, treated as false)"
        )
    lines.extend(format_uplift(summary))
    lines.append(f"  every line accounted for: {'yes' if summary['accounted'] else 'NO'}")
    lines.append(f"outputs in {out_dir}/ (summary.json, {', '.join(OUTPUT_FILES.values())})")
    return "\n".join(lines)
