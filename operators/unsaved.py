"""Stateful steps that skip bytewax's snapshots when nothing will read them.

bytewax 0.21 asks every key a step touched for a snapshot at the end of each
epoch, whether or not recovery is configured. Our states are pickled there
(:func:`state.serde.encode_state`): on a replay, which never recovers, that
was about a tenth of the run (131k snapshots, 144 MB of pickles, for a
237k-line file). These helpers build the same steps as ``op.stateful`` and
``op.stateful_batch`` (same step ids, same item semantics); with
``snapshots=False`` a key's snapshot is ``None`` and costs nothing.

Only a flow that can never be resumed may turn snapshots off: the live worker
always keeps them (its recovery directory may come from ``bytewax.run -r``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic, StatefulLogic

__all__ = ["stateful", "stateful_batch"]

Builder = Callable[[Any], StatefulLogic[Any, Any, Any]]
BatchBuilder = Callable[[Any], StatefulBatchLogic[Any, Any, Any]]


class _Unsaved(StatefulBatchLogic[Any, Any, Any]):
    """A batch logic whose snapshot is ``None``; everything else is the inner logic's."""

    __slots__ = ("inner",)

    def __init__(self, inner: StatefulBatchLogic[Any, Any, Any]) -> None:
        self.inner = inner

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        return self.inner.on_batch(values)

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        return self.inner.on_notify()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        return self.inner.on_eof()

    def notify_at(self) -> datetime | None:
        return self.inner.notify_at()

    def snapshot(self) -> None:
        return None


class _PerItem(StatefulBatchLogic[Any, Any, Any]):
    """``op.stateful``'s adapter (one ``on_item`` per value), without the snapshot."""

    __slots__ = ("builder", "logic")

    def __init__(self, logic: StatefulLogic[Any, Any, Any], builder: Builder) -> None:
        self.logic: StatefulLogic[Any, Any, Any] | None = logic
        self.builder = builder

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        if hasattr(self.logic, "on_batch"):
            # A logic that takes a batch at once as it would one by one (the models step).
            return self.logic.on_batch(values)  # type: ignore[union-attr]
        out: list[Any] = []
        for value in values:
            if self.logic is None:
                self.logic = self.builder(None)
            said, discard = self.logic.on_item(value)
            out.extend(said)
            if discard:
                self.logic = None
        return out, self.logic is None

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        assert self.logic is not None
        return self.logic.on_notify()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        assert self.logic is not None
        return self.logic.on_eof()

    def notify_at(self) -> datetime | None:
        assert self.logic is not None
        return self.logic.notify_at()

    def snapshot(self) -> None:
        return None


@operator
def _stateful_unsaved(step_id: str, up: KeyedStream[Any], builder: Builder) -> KeyedStream[Any]:
    # Nested like op.stateful ("<step>.stateful_batch"), so step paths are the same either way.
    return op.stateful_batch("stateful_batch", up, lambda resume: _PerItem(builder(resume), builder))


def stateful(step_id: str, up: KeyedStream[Any], builder: Builder, *, snapshots: bool) -> KeyedStream[Any]:
    """``op.stateful``; without ``snapshots``, the keys' states are never snapshotted."""
    if snapshots:
        return op.stateful(step_id, up, builder)
    return _stateful_unsaved(step_id, up, builder)


def stateful_batch(step_id: str, up: KeyedStream[Any], builder: BatchBuilder, *, snapshots: bool) -> KeyedStream[Any]:
    """``op.stateful_batch``; without ``snapshots``, the keys' states are never snapshotted."""
    if snapshots:
        return op.stateful_batch(step_id, up, builder)
    return op.stateful_batch(step_id, up, lambda resume: _Unsaved(builder(resume)))
