"""Let each process of a replay cluster read the input itself and keep its own users' items.

With one input partition, one worker reads and parses every line, and every
item then crosses to the worker that owns its user: with two processes the
reading process did all the parsing and pickled half the stream to the other
(``journeyflow replay --processes 2`` ran at 0.94x one process). Here every
process reads and parses the whole input (parsing is about a tenth of the
work per line) and runs the replay's clock (:func:`flows.files.replay_items`:
ticks, device links, input positions), so that every process sees the same
items with the same positions; it keeps only the items whose first keyed step
runs on one of its own workers, and those never cross. Dead letters, which
have no user, are kept by process 0. The clock itself decides what is kept
(:class:`flows.replay_clock.Owned`), as it places each item: the others'
events and ticks are never built, and no item is looked at twice.

Which worker a key's state lives on is bytewax's choice:
:func:`owner_worker` (:mod:`flows.replay_owners`, compiled) computes it the
same way (SipHash-1-3 with zero keys of the key's UTF-8 bytes and a 0xff
terminator, as Rust hashes a ``str``, modulo the worker count), checked
against bytewax's own routing in
``tests/flows/test_replay_shares.py``. Were it ever to differ, items would
still be correct, only exchanged once more.

Guarantees: the cluster emits each line's item exactly once, with the
position it has in one process's replay, so the per-user steps see what they
see in one process. Memory: the replay clock's per-key bookkeeping (as in one
process) and a cache of each key's worker.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from flows.files import REPLAY_BATCH, ReplayClock, ReplayProgress, check_inputs, replay_stream
from flows.replay_clock import Owned
from flows.replay_owners import owner_worker, siphash13
from journeyflow.event_parser import EventParser
from journeyflow.events import DeadLetter, Event
from journeyflow.step_records import Expect
from operators.identity import device_key, to_device

__all__ = ["ReplayShares", "owner_worker", "first_key", "placed_key", "models_key_for", "siphash13"]


def placed_key(base: str, worker: int, worker_count: int) -> str:
    """Return ``base``, or ``base-N`` for the first N, that bytewax keeps on ``worker``.

    A global step has one key, so one worker does all its work: the cluster
    places each global step's key where it chooses (a replay takes no
    snapshots, so the key's name is free there).

    >>> [owner_worker(placed_key("models", w, 2), 2) for w in (0, 1)]
    [0, 1]
    """
    if not 0 <= worker < worker_count:
        msg = f"worker must be in [0, {worker_count}); got {worker} instead"
        raise ValueError(msg)
    key, n = base, 0
    while owner_worker(key, worker_count) != worker:
        n += 1
        key = f"{base}-{n}"
    return key


def models_key_for(processes: int, workers_per_process: int) -> str:
    """Return the models step's key in a cluster: on the last worker of a process holding no other global step.

    The recommender's catalog and the loop each keep one key too; with all
    three on one process (bytewax's hash put them all on worker 0 of two),
    that process did about a quarter more work per line than the other.

    >>> owner_worker(models_key_for(2, 1), 2)
    1
    """
    # Imported here: the global steps' modules import much of the flow.
    from flows.recommend import CATALOG_KEY
    from operators.loop import LOOP_KEY

    worker_count = processes * workers_per_process
    busy = [0] * processes
    for key in (CATALOG_KEY, LOOP_KEY):
        busy[owner_worker(key, worker_count) // workers_per_process] += 1
    process = min(range(processes - 1, -1, -1), key=lambda p: busy[p])
    return placed_key("models", (process + 1) * workers_per_process - 1, worker_count)


def first_key(item: Any) -> str:
    """Return the key of the first keyed step ``item`` meets in the flow (devices or customers).

    The definition of an item's owner: the clock's share
    (:func:`flows.replay_clock.replay_items` with ``owned``) decides the same
    way as it places each item, checked in ``tests/flows/test_replay_shares.py``.
    """
    if isinstance(item, Expect):
        return item.user
    return device_key(item) if to_device(item) else item.user  # type: ignore[no-any-return]


class _Share(StatelessSourcePartition[Any]):
    """One process's share: every line read, only this process's items built and kept."""

    def __init__(self, source: ReplayShares, process: int, processes: int, worker_count: int) -> None:
        self._source = source
        self._process = process
        self._worker_count = worker_count
        self._workers_per_process = worker_count // processes
        # The whole input's counts (bytes, last time); the command's are this share's.
        self._all = ReplayProgress()
        self._owned = Owned(self._mine, letters=process == 0)
        self._items = replay_stream(source.paths, source.parser, source.clock, self._all, owned=self._owned)
        self._kept_lines = 0

    def _mine(self, key: str) -> bool:
        return owner_worker(key, self._worker_count) // self._workers_per_process == self._process

    def next_batch(self) -> list[Any]:
        # A batch is about ``batch_size`` lines of the whole input, of which this share keeps its own.
        kept = list(islice(self._items, self._source.batch_size // self._source.processes or 1))
        progress = self._source.progress
        if not kept:
            progress.last_ts_ms = self._all.last_ts_ms
            progress.users = self._all.users
            raise StopIteration()
        # Lines are events and dead letters; ticks and placeholders are the clock's.
        self._kept_lines += sum(1 for item in kept if type(item) is Event or type(item) is DeadLetter)
        progress.read = self._kept_lines
        progress.bytes_read, progress.bytes_total = self._all.bytes_read, self._all.bytes_total
        progress.tick()
        return kept


class ReplayShares(DynamicSource[Any]):
    """A replay's input for a cluster of ``processes`` processes: each reads everything, keeps its share.

    The first worker of each process reads; the others of that process get
    nothing (the items go to them through bytewax's in-process exchange).
    """

    def __init__(
        self,
        paths: list[Path],
        parser: EventParser,
        progress: ReplayProgress,
        clock: ReplayClock,
        *,
        processes: int,
        batch_size: int = REPLAY_BATCH,
    ) -> None:
        check_inputs(paths)
        if processes < 1:
            msg = f"processes must be >= 1; got {processes} instead"
            raise ValueError(msg)
        self.paths = paths
        self.parser = parser
        self.progress = progress
        self.clock = clock
        self.processes = processes
        self.batch_size = batch_size

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSourcePartition[Any]:
        if worker_count % self.processes:
            msg = f"workers must be a multiple of the {self.processes} processes; got {worker_count} instead"
            raise ValueError(msg)
        per_process = worker_count // self.processes
        if worker_index % per_process:
            return _Nothing()
        return _Share(self, worker_index // per_process, self.processes, worker_count)


class _Nothing(StatelessSourcePartition[Any]):
    def next_batch(self) -> list[Any]:
        raise StopIteration()
