"""Turn ``scripts/bench.py``'s measurements into figures, verdicts and tables.

Every table names each column with its unit and is followed by one line that
says how to read it; every figure with a target (issue 8, "Done when") has a
row in the verdicts with the measured value.
"""

from __future__ import annotations

from typing import Any

from bench_measure import KINDS, PARTS  # type: ignore[import-not-found]

__all__ = ["TARGETS", "derive", "verdicts", "render"]

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
        out = [_verdict(rate_name, rate_wanted, rate, _n(rate), rate >= t["lines_per_s"])]
        out.append(_verdict(flat_name, flat_wanted, flat, f"{flat:.0%}", flat >= t["flatness"]))
    f = big or files["small"]
    share = f["time_share"]
    wanted = f"<= {t['time_share']:.0%}"
    out.append(_verdict("ticks + end of input, share of work", wanted, share, f"{share:.1%}", share <= t["time_share"]))
    per_user = f["replay_bytes_per_user"]
    wanted = f"<= {t['bytes_per_user']:,} B"
    met = per_user <= t["bytes_per_user"]
    out.append(_verdict("resident bytes per user (replay)", wanted, per_user, f"{_n(per_user)} B", met))
    p = figures["processes"]
    wanted = f">= {t['processes']}x"
    if not p["available"]:
        out.append(_verdict("--processes 2 / 1 process", wanted, None, "not available", None))
    else:
        ratio = p["wall_s"]["1"] / p["wall_s"]["2"]
        out.append(_verdict("--processes 2 / 1 process", wanted, ratio, f"{ratio:.2f}x", ratio >= t["processes"]))
    return out


def _table(title: str, header: list[str], rows: list[list[str]], note: str) -> str:
    """Return a table: first column left-aligned, the others right-aligned, then its one-line explanation."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    body = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "\n".join([title, *("  " + b for b in body), f"  -> {note}", ""])


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _us(x: float) -> str:
    return f"{x:,.1f}"


def _files(figures: dict[str, Any], files: dict[str, dict[str, Any]]) -> str:
    rows = []
    for lb, f in files.items():
        meta = figures["files"][lb]["file"]
        size = f"{meta['bytes'] / 1e6:,.1f}"
        rows.append([lb, _n(f["lines"]), _n(f["events"]), _n(f["users"]), str(meta["days"]), size])
    return _table(
        "Files",
        ["file", "lines", "valid events", "users (keys)", "days", "size (MB)"],
        rows,
        "generated; users (keys) are user ids plus anonymous visitors' ids, as in the replay summary.",
    )


def _speed(files: dict[str, dict[str, Any]]) -> str:
    def row(name: str, show: Any) -> list[str]:
        return [name, *(show(f) for f in files.values())]

    rows = [
        row("orjson floor: read + orjson.loads", lambda f: _n(f["orjson_lines_per_s"])),
        row("engine floor: trivial bytewax flow", lambda f: _n(f["engine_lines_per_s"])),
        row("journeyflow replay: the flow", lambda f: _n(f["flow_lines_per_s"])),
        row("journeyflow replay: whole command", lambda f: _n(f["command_lines_per_s"])),
        row("journeyflow replay: the flow, per CPU second", lambda f: _n(f["flow_lines_per_cpu_s"])),
        row("the flow / engine floor (x, CPU)", lambda f: f"{f['flow_to_engine_cpu']:.3f}"),
        row("the flow / orjson floor (x, CPU)", lambda f: f"{f['flow_to_orjson_cpu']:.4f}"),
        row("garbage collection (% of command)", lambda f: f"{f['gc_share']:.1%}"),
        row("report.html after the flow (% of flow)", lambda f: f"{f['report_share']:.1%}"),
    ]
    return _table(
        "Speed, lines read per second (higher is better)",
        ["measure", *files],
        rows,
        "the engine floor runs the replay's source and sinks with one keyed pass-through step, a bound journeyflow "
        "cannot beat; the whole command adds start-up, combining the outputs and report.html; ratios use CPU time.",
    )


def _by_kind(label: str, f: dict[str, Any]) -> str:
    rows = []
    for k, by_part in f["us_per_item"].items():
        share = f"{f['share_of_work'][k]:.1%}"
        rows.append([k, _n(f["items"][k]), *(_us(by_part[p]) for p in PARTS), _us(sum(by_part.values())), share])
    per_line = f["us_per_line"]
    total = _us(sum(per_line.values()))
    rows.append(["per line read", _n(f["lines"]), *(_us(per_line[p]) for p in PARTS), total, "100%"])
    return _table(
        f"CPU microseconds per input item by kind and step, {label} file (driven without bytewax)",
        ["kind", "items", *PARTS, "total", "share of work (%)"],
        rows,
        "an item is charged all it caused in every step (a tick's rescoring in models is the tick's); "
        "other = search, email, login, identify, consent, forget.",
    )


def _per_line(files: dict[str, dict[str, Any]]) -> str:
    rows = [[p, *(_us(f["us_per_line"][p]) for f in files.values())] for p in PARTS]
    rows.append(["bytewax and routing (rest)", *(_us(f["us_per_line_rest"]) for f in files.values())])
    rows.append(["journeyflow replay: the flow", *(_us(f["us_per_line_flow"]) for f in files.values())])
    return _table(
        "Where a line's time goes, CPU microseconds per line read",
        ["part", *files],
        rows,
        "the rest is the flow's CPU time minus the steps' driven alone: bytewax and routing between the steps "
        "(two processes measured apart: a few microseconds either way are noise).",
    )


def _journey(f: dict[str, Any]) -> str:
    probed = f["journey_probed_us_per_line"]
    rows = [[n, _us(us), f"{us / probed:.0%}"] for n, us in f["journey_parts_us_per_line"].items()]
    rest = probed - sum(f["journey_parts_us_per_line"].values())
    rows.append(["the step's own code (rest)", _us(rest), f"{rest / probed:.0%}"])
    rows.append(["journey step, probed", _us(probed), "100%"])
    missing = f["probes_missing"]
    return _table(
        "Inside the journey step, small file: CPU microseconds per line read",
        ["part", "us per line", "share of journey (%)"],
        rows,
        "timed by wrapping the modules' functions, on their source, not the mypyc build (about 0.2 us a call"
        " more, so the step looks slower than above)"
        + (f"; not found: {', '.join(missing)}" if missing else "."),
    )


def _load(files: dict[str, dict[str, Any]]) -> str:
    names = list(next(iter(files.values()))["cpu_share"])
    rows = [[n, *(f"{f['cpu_share'][n]:.2f}" if n in f["cpu_share"] else "" for f in files.values())] for n in names]
    return _table(
        "Machine load: CPU share of each measurement (CPU time / wall time)",
        ["measurement", *files],
        rows,
        "1.00: it had a core to itself; below, other processes took the rest and its wall-clock figures suffer; "
        "above, numpy's threads worked alongside.",
    )


def _memory(files: dict[str, dict[str, Any]]) -> str:
    def row(name: str, key: str) -> list[str]:
        return [name, *(_n(f[key]) for f in files.values())]

    return _table(
        "Memory, bytes per user",
        ["measure", *files],
        [
            row("replay: peak RSS growth of the flow / users", "replay_bytes_per_user"),
            row("steps' state alone: RSS growth / users", "state_bytes_per_user"),
            row("journey snapshot, per user held", "snapshot_bytes_per_user"),
            row("audience snapshot, per user", "audience_snapshot_bytes_per_user"),
            row("users held at the end of input", "users_held"),
        ],
        "resident memory (RSS) is what the process really holds per user, models and allocator included; "
        "snapshots are what recovery stores.",
    )


def _processes(p: dict[str, Any]) -> str:
    if p["available"]:
        wall, flow = p["wall_s"], p["flow_s"]
        rows = [
            [n, f"{wall[n]:.1f}", _n(p["lines"] / wall[n]), f"{flow[n]:.1f}", f"{wall['1'] / wall[n]:.2f}"]
            for n in ("1", "2")
        ]
        same = "yes" if p["same_counts"] else "NO"
        note = f"small file, whole command; the same lines, events and users in both: {same}."
    else:
        rows = [["2", "not available", "", "", ""]]
        note = "journeyflow replay has no --processes option in this checkout."
    return _table("Processes", ["--processes", "command (s)", "lines/s", "flow (s)", "x one process"], rows, note)


def _targets(verdicts: list[dict[str, Any]]) -> str:
    shown = {True: "met", False: "NOT MET", None: "not measured"}
    return _table(
        "Targets (issue 8)",
        ["target", "wanted", "measured", "verdict"],
        [[v["name"], v["target"], v["shown"], shown[v["met"]]] for v in verdicts],
        "on the large file: lines/s of the whole command, memory of the flow; large/small compares the flows; "
        "ticks and end of input are a share of the steps' work without bytewax.",
    )


def render(figures: dict[str, Any]) -> str:
    """Return every table of the benchmark as text."""
    files = {label: derive(f) for label, f in figures["files"].items()}
    out = [
        "journeyflow replay benchmark: one process, one worker; each figure measured in a fresh process.",
        "The machine is shared and noisy: compare figures of one run (ratios), not across runs.",
    ]
    if figures["quick"]:
        out.append("QUICK RUN: tiny files, a smoke test; the figures and verdicts mean nothing at this size.")
    out += ["", _files(figures, files), _speed(files)]
    out += [_by_kind(label, f) for label, f in files.items()]
    out.append(_per_line(files))
    if "journey_parts_us_per_line" in files["small"]:
        out.append(_journey(files["small"]))
    out += [_memory(files), _processes(figures["processes"]), _load(files), _targets(figures["verdicts"])]
    out.append(f"benchmark took {figures['elapsed_s']:,.0f} s")
    return "\n".join(out)
