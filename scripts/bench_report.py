"""Print ``scripts/bench.py``'s figures and verdicts (``bench_figures.py``) as tables.

Every table names each column with its unit and is followed by one line that
says how to read it; every figure with a target (issue 8, "Done when") has a
row in the verdicts with the measured value.
"""

from __future__ import annotations

from typing import Any

from bench_figures import derive, number  # type: ignore[import-not-found]
from bench_measure import PARTS  # type: ignore[import-not-found]

__all__ = ["render"]


def _table(title: str, header: list[str], rows: list[list[str]], note: str) -> str:
    """Return a table: first column left-aligned, the others right-aligned, then its one-line explanation."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    body = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "\n".join([title, *("  " + b for b in body), f"  -> {note}", ""])


def _us(x: float) -> str:
    return f"{x:,.1f}"


def _files(figures: dict[str, Any], files: dict[str, dict[str, Any]]) -> str:
    rows = []
    for lb, f in files.items():
        meta = figures["files"][lb]["file"]
        size = f"{meta['bytes'] / 1e6:,.1f}"
        scored = "-" if f.get("models_scored") is None else number(f["models_scored"])
        rows.append([lb, number(f["lines"]), number(f["events"]), number(f["users"]), str(meta["days"]), size, scored])
    return _table(
        "Files",
        ["file", "lines", "valid events", "users (keys)", "days", "size (MB)", "model scores"],
        rows,
        "generated; users (keys) are user ids plus anonymous visitors' ids, as in the replay summary;"
        " model scores: none until the BG/NBD priors first fit (a file too short for that spares the models' work).",
    )


def _speed(files: dict[str, dict[str, Any]]) -> str:
    def row(name: str, show: Any) -> list[str]:
        return [name, *(show(f) for f in files.values())]

    rows = [
        row("orjson floor: read + orjson.loads", lambda f: number(f["orjson_lines_per_s"])),
        row("engine floor: trivial bytewax flow", lambda f: number(f["engine_lines_per_s"])),
        row("journeyflow replay: the flow", lambda f: number(f["flow_lines_per_s"])),
        row("journeyflow replay: whole command", lambda f: number(f["command_lines_per_s"])),
        row("journeyflow replay: the flow, per CPU second", lambda f: number(f["flow_lines_per_cpu_s"])),
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
        rows.append([k, number(f["items"][k]), *(_us(by_part[p]) for p in PARTS), _us(sum(by_part.values())), share])
    per_line = f["us_per_line"]
    total = _us(sum(per_line.values()))
    rows.append(["per line read", number(f["lines"]), *(_us(per_line[p]) for p in PARTS), total, "100%"])
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
        # .get: a --json file from before a figure existed shows it as not measured.
        return [name, *("not measured" if f.get(key) is None else number(f[key]) for f in files.values())]

    return _table(
        "Memory, bytes per user",
        ["measure", *files],
        [
            row("replay: peak RSS growth of the flow / users", "replay_bytes_per_user"),
            row("replay: RSS growth when the source ends (after every user finished) / users", "replay_bytes_per_user_at_input_end"),
            row("steps' state alone: RSS growth / users", "state_bytes_per_user"),
            row("journey snapshot, per user held", "snapshot_bytes_per_user"),
            row("audience snapshot, per user", "audience_snapshot_bytes_per_user"),
            row("users held at the end of input", "users_held"),
        ],
        "resident memory (RSS) is what the process really holds per user, models and allocator included; "
        "the peak minus the growth when the input ends is the end of input's burst (every user's final update at once); "
        "snapshots are what recovery stores.",
    )


def _processes(p: dict[str, Any]) -> str:
    if p["available"]:
        wall, flow = p["wall_s"], p["flow_s"]
        rows = [
            [n, f"{wall[n]:.1f}", number(p["lines"] / wall[n]), f"{flow[n]:.1f}", f"{wall['1'] / wall[n]:.2f}"]
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
