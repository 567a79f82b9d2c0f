"""StoreSink in real dataflows, writing a real redis-server or an InMemoryStore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.redis_sink import StoreSink
from journeyflow.records import ProfileRow, SegmentChange, Tombstone, Trigger
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import StateStore, StoreRecord

TS = 1_795_343_460_000


class _CountingStore(InMemoryStore):
    """An InMemoryStore that remembers its batches and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.closed = False

    def apply(self, records: Sequence[StoreRecord]) -> None:
        super().apply(records)
        self.batches.append(len(records))

    def close(self) -> None:
        self.closed = True


def _records() -> list[Any]:
    records: list[Any] = []
    for i in range(30):
        user = f"u{i % 3}"
        records.append(ProfileRow(user, TS + i, {"visits": i}, None))
        if i % 7 == 0:
            records.append(SegmentChange(user, TS + i, ("vip",), (), ("vip",), f"e{i}", {}))
    records.append(Tombstone("u0", TS + 99, "e-forget", ("vip",)))
    return records


def _flow(records: list[Any], sink: StoreSink) -> Dataflow:
    flow = Dataflow("store_sink_test")
    items = op.input("items", flow, TestingSource(records, batch_size=4))
    op.output("store", items, sink)
    return flow


def _check(store: StateStore) -> None:
    # u0 was erased last; u1 and u2 keep their latest row, in input order.
    assert store.profile("u0") is None
    assert store.members("vip") == {"u1", "u2"}
    assert store.profile("u1") == {
        "visits": "28", "updated_at": "2026-11-22T10:31:00.028Z", "segments": '["vip"]'
    }
    assert store.profile("u2") == {
        "visits": "29", "updated_at": "2026-11-22T10:31:00.029Z", "segments": '["vip"]'
    }


def test_store_sink_applies_every_batch_in_order() -> None:
    store = _CountingStore()
    records = _records()
    run_main(_flow(records, StoreSink(lambda: store)))
    _check(store)
    assert sum(store.batches) == len(records)
    assert store.closed  # closed when the flow ends on finite input


@pytest.mark.redis
def test_store_sink_writes_redis(redis_url: str) -> None:
    run_main(_flow(_records(), StoreSink(lambda: RedisStore.connect(redis_url))))
    store = RedisStore.connect(redis_url)
    try:
        _check(store)
    finally:
        store.close()


def test_store_sink_refuses_other_records() -> None:
    store = _CountingStore()
    trigger = Trigger("t1", "cart_abandonment", "u1", TS, None, "treatment", {})
    with pytest.raises(Exception) as caught:
        run_main(_flow([ProfileRow("u1", TS, {"visits": 1}), trigger], StoreSink(lambda: store)))
    cause: BaseException | None = caught.value
    while cause is not None and not isinstance(cause, TypeError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None, caught.value
    assert str(cause) == (
        "store records must be ProfileRow, SegmentChange, Tombstone, Restore or IdentityMerge; got Trigger instead"
    )
    assert store.batches == []  # nothing of the batch was applied
