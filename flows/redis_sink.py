"""A bytewax sink that applies profile records to a :class:`~state.store.StateStore`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from journeyflow.io_metrics import sink_timer
from state.store import StateStore

__all__ = ["StoreSink"]


class _StorePartition(StatelessSinkPartition[Any]):
    def __init__(self, store: StateStore, step_id: str) -> None:
        self._store = store
        self._step_id = step_id

    def write_batch(self, items: list[Any]) -> None:
        # The store refuses a batch holding anything else before writing any of it.
        with sink_timer(self._step_id, len(items)):
            self._store.apply(items)

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[Any]):
    """Apply store records (:data:`~state.store.StoreRecord`) to a store, one store per worker.

    Each batch bytewax delivers is applied in order with one ``store.apply``
    call (one Redis round trip), and ``write_batch`` returns only once it is
    stored, so the store is up to date before the epoch closes. On resume,
    bytewax replays the unfinished epoch: the same records are applied again,
    which leaves the same state. Any other item raises ``TypeError``.

    :arg store_factory: called once per worker, in the worker, to make its
        store (``lambda: RedisStore.connect(url)``); it may return one
        thread-safe store shared by all workers.
    """

    def __init__(self, store_factory: Callable[[], StateStore]) -> None:
        self._store_factory = store_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(self._store_factory(), step_id)
