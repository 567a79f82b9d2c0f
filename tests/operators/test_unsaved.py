"""operators/unsaved.py: the same steps as bytewax's, with or without snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic, StatefulLogic
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.unsaved import stateful, stateful_batch


class Counter(StatefulLogic[int, tuple[int, int], int]):
    """Counts a key's items; the third one discards the key's state."""

    snapshots: list[int] = []

    def __init__(self, resume: int | None) -> None:
        self.count = resume or 0

    def on_item(self, value: int) -> tuple[list[tuple[int, int]], bool]:
        self.count += 1
        return [(value, self.count)], self.count == 3

    def snapshot(self) -> int:
        Counter.snapshots.append(self.count)
        return self.count


class Batches(StatefulBatchLogic[int, int, int]):
    snapshots: list[int] = []

    def __init__(self, resume: int | None) -> None:
        self.total = resume or 0

    def on_batch(self, values: list[int]) -> tuple[list[int], bool]:
        self.total += sum(values)
        return [self.total], False

    def snapshot(self) -> int:
        Batches.snapshots.append(self.total)
        return self.total


ITEMS = [(str(i % 3), i) for i in range(12)]


def _run(step: str, snapshots: bool) -> list[Any]:
    flow = Dataflow("unsaved")
    up = op.input("in", flow, TestingSource(ITEMS, batch_size=2))
    if step == "item":
        down = stateful("count", up, Counter, snapshots=snapshots)
    else:
        down = stateful_batch("sum", up, Batches, snapshots=snapshots)
    out: list[Any] = []
    op.output("out", down, TestingSink(out))
    run_main(flow, epoch_interval=timedelta(seconds=0))
    return out


@pytest.mark.parametrize("step", ["item", "batch"])
def test_the_same_items_with_and_without_snapshots(step: str) -> None:
    Counter.snapshots.clear()
    Batches.snapshots.clear()
    kept = _run(step, snapshots=True)
    taken = list(Counter.snapshots if step == "item" else Batches.snapshots)
    Counter.snapshots.clear()
    Batches.snapshots.clear()
    skipped = _run(step, snapshots=False)
    assert skipped == kept
    assert taken, "bytewax snapshots every touched key at each epoch when asked to"
    assert Counter.snapshots == [] and Batches.snapshots == []


def test_a_discarded_key_starts_again() -> None:
    out = _run("item", snapshots=False)
    # Key "0" sees 0, 3, 6 (discarded at its third), then 9 starts a new count.
    assert [count for value, count in sorted((kv[1] for kv in out)) if value in (0, 3, 6, 9)] == [1, 2, 3, 1]
