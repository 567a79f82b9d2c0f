"""Time ``journeyflow replay --processes N`` as a whole command, with each process's CPU seconds.

Run under the machine lock, alternating the process counts in one hold::

    flock /tmp/bench.lock .venv/bin/python scripts/bench_processes.py FILE --counts 1 2 1 2

or against another version's tree (a copy, compiled in place), each count run
with the base first, then this tree::

    flock /tmp/bench.lock .venv/bin/python scripts/bench_processes.py FILE --counts 2 1 2 \\
        --base /tmp/base12 --base-python /work/main/.venv/bin/python

Each run is a fresh ``journeyflow replay FILE --out DIR --processes N -q``
(DIR under ``--workdir``). The process tree is sampled every 0.1 s from
``/proc``: a process's CPU (user + system) is its last sample, so a
worker's last 0.1 s may be missed (the figure is a floor); the command's
total is ``getrusage`` of the whole tree, exact. Each process's threads are
sampled too (``cpu_s_threads``, by thread name): in a cluster the dataflow
runs on bytewax's ``timely:work-N`` threads, while the main thread (``python``)
holds process 0's imports and what each process does after the flow, so the
flow's own CPU can be told from the command's serial parts (one process runs
its worker on the main thread).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """Return the user + system CPU seconds of ``pid`` so far (``None``: gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command's name: state is field 3, utime 14, stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Return each thread of ``pid``: its id, name and user + system CPU seconds so far.

    >>> name, seconds = thread_cpu_seconds(os.getpid())[os.getpid()]
    >>> seconds >= 0.0
    True
    """
    threads: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        threads[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
    return threads


def _by_name(threads: dict[int, tuple[str, float]]) -> dict[str, float]:
    """Sum threads of the same name; keep those that used at least 0.05 s."""
    named: dict[str, float] = {}
    for name, seconds in threads.values():
        named[name] = named.get(name, 0.0) + seconds
    return {name: round(seconds, 2) for name, seconds in sorted(named.items()) if seconds >= 0.05}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def run_once(
    path: Path, out: Path, processes: int, env: dict[str, str], python: str = sys.executable, cwd: Path | None = None
) -> dict[str, object]:
    """Run the command once; return wall seconds, CPU seconds per process and in total."""
    command = [python, "-m", "journeyflow.cli", "replay", str(path.resolve()), "--out", str(out.resolve())]
    command += ["--processes", str(processes), "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=cwd)
    cpu: dict[int, float] = {}
    threads: dict[int, dict[int, tuple[str, float]]] = {}
    order: list[int] = []
    while proc.poll() is None:
        for pid in [proc.pid, *_children(proc.pid)]:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                if pid not in cpu:
                    order.append(pid)
                cpu[pid] = seconds
                threads.setdefault(pid, {}).update(thread_cpu_seconds(pid))
        time.sleep(0.1)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        msg = f"journeyflow replay must end with status 0; got {proc.returncode} instead"
        raise RuntimeError(msg)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "processes": processes,
        "wall_s": round(wall, 2),
        "flow_s": summary["elapsed_s"],
        "cpu_s_total": round(total, 2),
        "cpu_s_per_process": [round(cpu[pid], 2) for pid in order],
        "cpu_s_threads": [_by_name(threads[pid]) for pid in order],
        "read": summary["read"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 1, 2], help="process counts, run in this order")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_processes"))
    parser.add_argument("--pure", action="store_true", help="run the source (JOURNEYFLOW_PURE=1)")
    parser.add_argument(
        "--base",
        type=Path,
        help="a copy of another version's tree (compiled in place): each count runs it, then this tree",
    )
    parser.add_argument("--base-python", default=sys.executable, help="the interpreter that runs --base")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.pure:
        env["JOURNEYFLOW_PURE"] = "1"
    for i, n in enumerate(args.counts):
        if args.base is not None:
            # The base first, then this tree, per count: alternated, so load drifts hit both.
            base_env = {**env, "PYTHONPATH": str(args.base.resolve())}
            out = args.workdir / f"{args.input.stem}-base-p{n}-{i}"
            run = run_once(args.input, out, n, base_env, args.base_python, args.base)
            print(json.dumps({"version": "base", **run}), flush=True)
        out = args.workdir / f"{args.input.stem}-p{n}-{i}"
        print(json.dumps({"version": "this", **run_once(args.input, out, n, env)}), flush=True)


if __name__ == "__main__":
    main()
