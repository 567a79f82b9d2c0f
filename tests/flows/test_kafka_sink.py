"""KafkaSink against a real broker (Tansu, started by ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.kafka_delivery import record_key
from flows.kafka_sink import KafkaSink
from journeyflow.events import DeadLetter
from journeyflow.records import SegmentChange, Tombstone, Trigger

from tests.conftest import KafkaBroker
from tests.flows.kafka_io import consume_all

pytestmark = pytest.mark.kafka


# --- KafkaSink ------------------------------------------------------------------


def test_sink_writes_records_keyed_by_user_with_their_exact_json(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3)
    records: list[Any] = []
    for i in range(40):
        user = f"u{i % 5}"
        records.append(
            Trigger(f"t{i}", "cart_abandonment", user, 1_795_343_460_000 + i, f"e{i}", "treatment", {"n": i})
        )
        if i % 10 == 0:
            records.append(SegmentChange(user, 1_795_343_460_000 + i, ("vip",), (), ("vip",), f"e{i}", {}))
    records.append(Tombstone("u1", 1_795_343_460_999, "e-forget", ("vip",)))
    records.append(DeadLetter("invalid_json", "invalid JSON at char 0", b"{", "events/0@3"))

    flow = Dataflow("sink_test")
    items = op.input("items", flow, TestingSource(records, batch_size=7))
    op.output("write", items, KafkaSink([kafka_broker.bootstrap], topic, connect_timeout_s=5))
    run_main(flow)

    got = consume_all(kafka_broker.bootstrap, topic, len(records))
    def sortable(key: bytes | None, value: bytes) -> tuple[bool, bytes, bytes]:
        return key is None, key or b"", value

    assert sorted(sortable(m.key, m.value) for m in got) == sorted(
        sortable(record_key(r), r.to_json()) for r in records
    )
    assert [m.key for m in got if m.value == records[-1].to_json()] == [None]
    # One user's records share a partition and keep their order.
    for user in {r.user_id for r in records if hasattr(r, "user_id")}:
        key = user.encode()
        assert len({m.partition for m in got if m.key == key}) == 1
        sent = [r.to_json() for r in records if record_key(r) == key]
        assert [m.value for m in sorted(got, key=lambda m: m.offset) if m.key == key] == sent

