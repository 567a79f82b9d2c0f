"""A replay's output files, the stable order each is combined in, and its summary for a person.

The order of every combined file does not depend on the number of workers or processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from flows.uplift_report import format_uplift
from journeyflow.events import parse_ts
from journeyflow.records import ModelReport

__all__ = ["MODELS_FILE", "OUTPUT_FILES", "OUTPUT_ORDER", "format_summary", "model_summary", "segment_sizes"]

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


OUTPUT_ORDER = {
    "sessions": _session_order,
    "dead_letters": _dead_letter_order,
    "segment_changes": _change_order,
    "triggers": _time_order,
    "holdouts": _time_order,
    "conversions": _time_order,
    "profiles": _user_order,
}


def model_summary(reports: list[ModelReport], out_dir: Path) -> dict[str, Any]:
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


def _count(n: int, noun: str) -> str:
    """Return ``n noun`` with the noun plural unless ``n`` is one.

    >>> _count(1, "record"), _count(1_200, "record")
    ('1 record', '1,200 records')
    """
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


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
        # Counts `segment_change` records only; their file also holds the tombstones and
        # merges, so the line gives its total too (it is the file's line count).
        f"  segment changes {summary['segment_changes']:>8,}   times a user's segments changed; "
        f"with tombstones {summary['tombstones']:,} and identity merges {summary['identity_merges']:,} "
        "(anonymous devices joined to customers): "
        f"{_count(summary['segment_changes'] + summary['tombstones'] + summary['identity_merges'], 'record')} "
        f"in {OUTPUT_FILES['segment_changes']}",
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
