"""Run a replay as a bytewax cluster of several processes on one machine.

``journeyflow replay --processes N`` starts N-1 worker processes next to its
own (process 0), all running the same dataflow with ``process_id`` and the
cluster's ``addresses`` (bytewax's ``-i``/``-a``). Every process reads and
parses the whole input and keeps the items of the users whose state lives on
its own workers (:mod:`flows.replay_shares`), so input never crosses between
processes and the per-user steps share the cores. The global steps (models,
the recommender's catalog, the loop) each stay on one worker: what the
per-user steps send them crosses when that worker is in the other process.
The models step is placed on a process without the other two
(:func:`flows.replay_shares.models_key_for`), and gets compact asks, one
list per batch, answering with scores alone (:mod:`flows.models_hop`).

The worker processes are forked from process 0 once it has imported
everything (``fork``): a fresh interpreter took about 1.5 CPU seconds to
import the flow's modules (River, scipy) while process 0 waited for it to
join the cluster.

Each process writes its own part files (named by worker index, unique in the
cluster) and keeps its own in-memory counts. Once every process's dataflow
has ended (:class:`Handoff`: every part file is closed), each combines its
share of the output files and reads them for the report, so the cluster
shares that serial work too; a worker process then pickles what it collected
to ``<out>/.process-<id>.pkl``, and process 0 adds them to its own before
writing the summary.

Guarantees: sessions, dead letters, rule triggers and profiles are those of
one process, since each user's items keep their order. What the global models
learn depends on the order in which users' updates reach them, which differs
with the number of processes: model scores, the segments over them
(``at_risk``, ``cluster:N``), their entry triggers and the recommender's
lists may differ from one process's.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Collected", "Handoff", "free_addresses", "result_path", "start_workers", "stop_workers", "wait_workers"]


@dataclass
class Collected:
    """What one process's in-memory sinks and source gathered (pickled by workers)."""

    read: int = 0
    last_ts_ms: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Records written per output file, in total and per category."""
    totals: dict[str, int] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    reports: list[Any] = field(default_factory=list)
    loop_reports: list[Any] = field(default_factory=list)
    rec_parts: list[Any] = field(default_factory=list)
    rule_errors: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    """The report's reading of each output file this process combined, by file name."""

    def add(self, other: Collected) -> None:
        """Add another process's figures to these."""
        self.read += other.read
        if other.last_ts_ms is not None:
            self.last_ts_ms = max(self.last_ts_ms or other.last_ts_ms, other.last_ts_ms)
        for name, counts in other.counts.items():
            mine = self.counts.setdefault(name, {})
            for key, n in counts.items():
                mine[key] = mine.get(key, 0) + n
        for key, n in other.totals.items():
            self.totals[key] = self.totals.get(key, 0) + n
        self.users |= other.users
        self.reports += other.reports
        self.loop_reports += other.loop_reports
        self.rec_parts += other.rec_parts
        for rule, n in other.rule_errors.items():
            self.rule_errors[rule] = self.rule_errors.get(rule, 0) + n
        self.outputs.update(other.outputs)


class Handoff:
    """Tells each process of a cluster when every process's dataflow has ended (all part files closed).

    Made before the worker processes are forked, which inherit its events.
    """

    def __init__(self, processes: int) -> None:
        fork = multiprocessing.get_context("fork")
        self.ended = [fork.Event() for _ in range(processes)]
        self.parent = os.getpid()
        self.children: list[BaseProcess] = []
        """Process 0's worker processes (set there once started)."""

    def end(self, process_id: int) -> None:
        """Say this process's dataflow has ended; return once every process's has."""
        self.ended[process_id].set()
        for other, event in enumerate(self.ended):
            while not event.wait(0.05):
                self._check(other)

    def _check(self, process_id: int) -> None:
        if os.getpid() != self.parent:  # a worker: process 0 stops the others should one fail
            if os.getppid() != self.parent:
                msg = "replay process 0 must run until the cluster's dataflow ends; got it gone instead"
                raise RuntimeError(msg)
            return
        worker = self.children[process_id - 1]
        if not worker.is_alive():
            msg = f"replay process {process_id} must end its dataflow; got status {worker.exitcode} before it did"
            raise RuntimeError(msg)


def free_addresses(count: int) -> list[str]:
    """Return ``count`` loopback addresses with ports free right now.

    >>> len(free_addresses(2))
    2
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def result_path(out_dir: Path, process_id: int) -> Path:
    """Return where worker process ``process_id`` leaves what it collected."""
    return out_dir / f".process-{process_id}.pkl"


def start_workers(job: dict[str, Any], processes: int, out_dir: Path) -> list[BaseProcess]:
    """Start processes 1..N-1 of the cluster, forked; ``job`` holds the replay's arguments and addresses.

    Call it before the dataflow runs in this process: a fork copies only the
    calling thread, so no bytewax thread may be running yet.
    """
    fork = multiprocessing.get_context("fork")
    workers: list[BaseProcess] = []
    for pid in range(1, processes):
        worker = fork.Process(target=_work, args=(job, pid), name=f"replay-process-{pid}", daemon=True)
        worker.start()
        workers.append(worker)
    return workers


def wait_workers(workers: list[BaseProcess], out_dir: Path) -> list[Collected]:
    """Wait for the worker processes; return what each collected (raise if one failed)."""
    collected = []
    for pid, worker in enumerate(workers, start=1):
        worker.join()
        if worker.exitcode != 0:
            msg = f"replay process {pid} must end with status 0; got {worker.exitcode} instead"
            raise RuntimeError(msg)
        path = result_path(out_dir, pid)
        collected.append(pickle.loads(path.read_bytes()))
        path.unlink()
    return collected


def stop_workers(workers: list[BaseProcess]) -> None:
    """End the worker processes still running (process 0 failed or was stopped)."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join()


def _work(job: dict[str, Any], process_id: int) -> None:
    """Run one worker process of a replay cluster (the forked process's target)."""
    # As quiet as process 0 with -q: what a worker would print is process 0's to say.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    job = dict(job)
    run: Callable[..., Collected] = job.pop("run")
    collected = run(process_id=process_id, **job)
    result_path(job["out_dir"], process_id).write_bytes(pickle.dumps(collected))
