"""Replay recorded event files through the journeyflow dataflow.

``journeyflow replay INPUT... --out DIR`` runs :func:`replay`: the same flow as
the live worker (:func:`flows.journey.build_flow`) with file inputs and JSON
Lines outputs (:mod:`flows.replay_outputs`), then writes ``summary.json``. Every line
read is accounted for: ``read == processed + duplicates + dead_letters``.
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
from flows.file_sinks import CollectSink, JsonLinesSink, TallySink, combine_parts
from flows.files import ReplayClock, ReplayProgress, ReplaySource, print_progress
from flows.journey import MODELS_KEY, Outputs, build_flow
from flows.step_configs import event_parser
from flows.processes import Collected, Handoff, free_addresses, start_workers, stop_workers, wait_workers
from flows.uplift_report import loop_summary
from flows.recommend import QualitySink
from flows.replay_outputs import OUTPUT_FILES, OUTPUT_ORDER, model_summary, segment_sizes
from flows.replay_shares import ReplayShares, models_key_for
from flows.runtime import execute
from journeyflow import metrics
from journeyflow.events import DeadLetter, format_ts
from journeyflow.evaluation import model_quality, read_truth
from journeyflow.errors import JourneyflowError
from journeyflow.report import write_report
from journeyflow.report_data import REPORT_INPUTS, ReportData, joined, read_outputs

__all__ = ["replay"]


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
        elapsed = time.monotonic() - started
        collected.outputs = _finish_outputs(out_dir, processes, 0)
    else:
        addresses = free_addresses(processes)
        handoff = Handoff(processes)
        job = {
            "run": _run_share,
            "inputs": inputs,
            "out_dir": out_dir,
            "settings": settings,
            "workers": workers,
            "show_progress": False,
            "addresses": addresses,
            "handoff": handoff,
        }
        handoff.children = children = start_workers(job, processes, out_dir)
        try:
            collected = _run_process(
                inputs, out_dir, settings, workers=workers, show_progress=show_progress, addresses=addresses
            )
            handoff.end(0)
            elapsed = time.monotonic() - started
            collected.outputs = _finish_outputs(out_dir, processes, 0)
            for other in wait_workers(children, out_dir):
                collected.add(other)
        finally:
            stop_workers(children)

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
    summary["models"] = model_summary(collected.reports, out_dir)
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
    # The report is built from the outputs after the flow (so it costs the flow nothing), from each
    # process's reading of the files it combined, once summary.json is there: should it fail, the
    # outputs are complete all the same.
    parts = {name: part for name, part in collected.outputs.items() if part is not None}
    data = joined(parts, summary) if parts.keys() >= REPORT_INPUTS.keys() else None
    report = write_report(out_dir, summary=summary, data=data, show_progress=show_progress)
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
    # One worker finishes its users in the source's batches (flows/replay_clock.py); several
    # keep bytewax's end of input, the only point every worker's last ticks are known to be learned at.
    source: Any = ReplaySource(inputs, event_parser(settings), progress, clock, finish=workers == 1)
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
    models_key = MODELS_KEY if addresses is None else models_key_for(len(addresses), workers)
    # A cluster sends the models compact asks and keeps each update on its worker (flows/models_hop.py).
    flow = build_flow(settings, read_files, outputs, live=False, models_key=models_key, models_apart=addresses is not None)
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


def _run_share(*, handoff: Handoff, process_id: int, **job: Any) -> Collected:
    """Run a worker process's share of a cluster's replay, then its share of the outputs (:func:`_finish_outputs`)."""
    collected = _run_process(process_id=process_id, **job)
    handoff.end(process_id)
    collected.outputs = _finish_outputs(job["out_dir"], len(handoff.ended), process_id)
    return collected


# Each process of a cluster takes every n-th file from this list: process 0 takes the
# profiles (it reads them again for the summary), the largest files go to different processes;
# every other output follows, so an output added to OUTPUT_FILES is combined all the same.
_LARGEST_FIRST = ("profiles", "segment_changes", "sessions")
_FINISH_ORDER = (*_LARGEST_FIRST, *(name for name in OUTPUT_FILES if name not in _LARGEST_FIRST))


def _finish_outputs(out_dir: Path, processes: int, process_id: int) -> dict[str, ReportData | None]:
    """Combine this process's share of the output files (every part closed) and read them for the
    report: each one's reading by file name (``None``: unreadable, left to the report to say why)."""
    read: dict[str, ReportData | None] = {}
    for name in _FINISH_ORDER[process_id::processes]:
        file = OUTPUT_FILES[name]
        combine_parts(out_dir, file, OUTPUT_ORDER[name])
        if file in REPORT_INPUTS:
            try:
                read[file] = read_outputs(out_dir, [file])
            except JourneyflowError:
                read[file] = None
    return read


def _rule_errors_since(before: dict[str, int]) -> dict[str, int]:
    after = metrics.rule_error_counts()
    return {rule: n - before.get(rule, 0) for rule, n in sorted(after.items()) if n > before.get(rule, 0)}
