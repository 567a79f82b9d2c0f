"""Derive ``scripts/bench.py``'s figures from its measurements, and judge them against
issue 8's targets (``bench_report.py`` prints them as tables).
"""

from __future__ import annotations

from typing import Any

from bench_measure import KINDS, PARTS  # type: ignore[import-not-found]

__all__ = ["TARGETS", "derive", "number", "verdicts"]

# Issue 8's targets, for one process on this 2-core machine.
TARGETS = {
    "lines_per_s": 15_000,  # lines/s on the large file: 4x the 3.8k (1M lines, 80k users)
    "flatness": 0.90,  # the large file's lines/s as a share of the small one's
    "time_share": 0.10,  # ticks and end of input, share of the run's work
    "bytes_per_user": 3_000,  # resident bytes per user (3 KB)
    "processes": 1.6,  # --processes 2 against one process, whole command
}


def derive(f: dict[str, Any]) -> dict[str, Any]:
    """Return one file's derived figures (rates, shares, microseconds) from its measurements.

    Microseconds are CPU microseconds: wall time scaled by the measuring
    process's CPU share (CPU time / wall time), which takes out the time other
    processes had the core, so that figures measured minutes apart compare.
    Lines per second stay wall-clock rates: what a user waits for.
    """
    replay, parts = f["replay"], f["parts"]
    lines = replay["lines"]
    seconds = parts["seconds"]
    counts = parts["counts"]
    cpu = parts["cpu_s"] / parts["wall_s"] * 1e6  # CPU microseconds per wall second
    driven = sum(sum(by_kind.values()) for by_kind in seconds.values())
    timed = sum(s for by_kind in seconds.values() for k, s in by_kind.items() if k in ("tick", "end of input"))
    per_line = {p: sum(seconds[p].values()) * cpu / max(1, parts["lines"]) for p in PARTS}
    flow_cpu_s = replay["flow_s"] * replay["flow_cpu_share"]
    flow_us = flow_cpu_s * 1e6 / max(1, lines)
    engine, floor = f["engine"], f["orjson"]
    d = {
        "lines": lines,
        "events": replay["events"],
        "users": replay["users"],
        "models_scored": replay.get("models_scored"),  # absent from figures saved before it was measured
        "orjson_lines_per_s": floor["lines"] / floor["seconds"],
        "engine_lines_per_s": engine["lines"] / engine["seconds"],
        "flow_lines_per_s": lines / replay["flow_s"],
        "command_lines_per_s": lines / replay["wall_s"],
        "flow_lines_per_cpu_s": lines / flow_cpu_s,
        "flow_to_engine_cpu": engine["cpu_s"] / engine["lines"] / (flow_cpu_s / lines),
        "flow_to_orjson_cpu": floor["cpu_s"] / floor["lines"] / (flow_cpu_s / lines),
        "cpu_share": {
            "orjson floor": floor["cpu_s"] / floor["seconds"],
            "engine floor": engine["cpu_s"] / engine["seconds"],
            "replay, the flow": replay["flow_cpu_share"],
            "replay, whole command": replay["cpu_s"] / replay["wall_s"],
            "steps driven alone": parts["cpu_s"] / parts["wall_s"],
        },
        "gc_share": replay["gc_s"] / replay["wall_s"],  # both wall clock: the load inflates them alike
        "report_share": replay["report_s"] / replay["flow_s"],
        "time_share": timed / driven if driven else 0.0,
        "us_per_line": per_line,
        "us_per_line_flow": flow_us,
        "us_per_line_rest": flow_us - sum(per_line.values()),
        "us_per_item": {
            k: {p: seconds[p].get(k, 0.0) * cpu / counts[k] for p in PARTS} for k in KINDS if counts.get(k)
        },
        "items": {k: counts.get(k, 0) for k in KINDS},
        "share_of_work": {k: sum(seconds[p].get(k, 0.0) for p in PARTS) / driven if driven else 0.0 for k in KINDS},
        "replay_bytes_per_user": replay["rss_growth_bytes"] / max(1, replay["users"]),
        "replay_bytes_per_user_at_input_end": (
            None
            if replay.get("rss_growth_at_input_end_bytes") is None
            else replay["rss_growth_at_input_end_bytes"] / max(1, replay["users"])
        ),
        "state_bytes_per_user": parts["rss_growth_bytes"] / max(1, parts["users"]),
        "snapshot_bytes_per_user": parts["snapshot_bytes_per_held_user"],
        "audience_snapshot_bytes_per_user": parts["audience_snapshot_bytes_per_user"],
        "users_held": parts["users_held"],
    }
    if "probes" in f:
        probes = f["probes"]
        scale = probes["cpu_s"] / probes["wall_s"] * 1e6 / max(1, probes["lines"])
        d["cpu_share"]["journey step probed"] = probes["cpu_s"] / probes["wall_s"]
        d["journey_parts_us_per_line"] = {n: s * scale for n, s in probes["probes_s"].items()}
        d["journey_probed_us_per_line"] = sum(probes["seconds"]["journey"].values()) * scale
        d["probes_missing"] = probes["probes_missing"]
    return d


def _verdict(name: str, wanted: str, value: float | None, shown: str, met: bool | None) -> dict[str, Any]:
    return {"name": name, "target": wanted, "measured": value, "shown": shown, "met": met}


def verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one verdict per target: its name, the target, the measured figure and whether it is met.

    Lines/s, the share of ticks and memory are judged on the large file (the
    targets' file), or the small one when there is no large file.
    """
    files = {label: derive(f) for label, f in figures["files"].items()}
    t = TARGETS
    rate_name, rate_wanted = "lines/s, large file, 1 process", f">= {t['lines_per_s']:,}"
    flat_name, flat_wanted = "large file's lines/s / small's (flow, CPU)", f">= {t['flatness']:.0%}"
    big = files.get("large")
    if big is None:
        out = [_verdict(rate_name, rate_wanted, None, "no large file", None)]
        out.append(_verdict(flat_name, flat_wanted, None, "no large file", None))
    else:
        rate = big["command_lines_per_s"]
        # The flows' rates per CPU second: start-up and the report are fixed costs that
        # would flatter the large file, and the files are measured minutes apart.
        flat = big["flow_lines_per_cpu_s"] / files["small"]["flow_lines_per_cpu_s"]
        out = [_verdict(rate_name, rate_wanted, rate, number(rate), rate >= t["lines_per_s"])]
        out.append(_verdict(flat_name, flat_wanted, flat, f"{flat:.0%}", flat >= t["flatness"]))
    f = big or files["small"]
    share = f["time_share"]
    wanted = f"<= {t['time_share']:.0%}"
    out.append(_verdict("ticks + end of input, share of work", wanted, share, f"{share:.1%}", share <= t["time_share"]))
    per_user = f["replay_bytes_per_user"]
    wanted = f"<= {t['bytes_per_user']:,} B"
    met = per_user <= t["bytes_per_user"]
    out.append(_verdict("resident bytes per user (replay)", wanted, per_user, f"{number(per_user)} B", met))
    p = figures["processes"]
    wanted = f">= {t['processes']}x"
    if not p["available"]:
        out.append(_verdict("--processes 2 / 1 process", wanted, None, "not available", None))
    else:
        ratio = p["wall_s"]["1"] / p["wall_s"]["2"]
        out.append(_verdict("--processes 2 / 1 process", wanted, ratio, f"{ratio:.2f}x", ratio >= t["processes"]))
    return out



def number(x: float) -> str:
    return f"{x:,.0f}"
