"""The replay's garbage-collector setting: survivors frozen during the flow, nothing frozen after it."""

from __future__ import annotations

import gc

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource

from flows.runtime import _FreezeSurvivors, execute


def test_only_a_finished_collection_of_an_older_generation_freezes() -> None:
    freezer = _FreezeSurvivors()
    kept = [[i] for i in range(1000)]  # tracked objects that survive
    try:
        gc.unfreeze()
        freezer("start", {"generation": 2})
        freezer("stop", {"generation": 0})
        assert gc.get_freeze_count() == 0
        freezer("stop", {"generation": 1})
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


def test_a_flow_run_freezes_survivors_while_it_runs_and_leaves_nothing_frozen() -> None:
    count = 600_000  # pairs kept by the sink: enough for a collection of the middle generation
    flow = Dataflow("gc_freeze")
    out: list[list[object]] = []
    frozen_seen: list[int] = []

    def box(n: int) -> list[object]:
        if n % 50_000 == 0:
            frozen_seen.append(gc.get_freeze_count())
        return [n, [n]]

    op.output("out", op.map("box", op.input("in", flow, TestingSource(range(count))), box), TestingSink(out))
    execute(flow, freeze_survivors=True)
    assert len(out) == count and out[-1] == [count - 1, [count - 1]]
    assert max(frozen_seen) - frozen_seen[0] > 100_000  # the kept pairs were frozen during the run
    assert gc.get_freeze_count() == 0
    assert not any(isinstance(callback, _FreezeSurvivors) for callback in gc.callbacks)
