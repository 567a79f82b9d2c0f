"""Kafka start-up: unreachable brokers and missing topics fail fast and by name; the
topic helpers create only what is missing (real broker: Tansu, ``tests/conftest.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from bytewax.testing import run_main

from flows.kafka import check_brokers, ensure_topics, topic_partitions
from flows.kafka_sink import KafkaSink
from flows.kafka_source import KafkaSource
from journeyflow.errors import ConnectionFailure

from tests.conftest import KafkaBroker, free_port
from tests.flows.kafka_io import find_cause, read_flow

pytestmark = pytest.mark.kafka


# --- start-up failures --------------------------------------------------------


def test_unreachable_broker_fails_within_the_timeout() -> None:
    address = f"127.0.0.1:{free_port()}"
    source = KafkaSource([address], "events", connect_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(ConnectionFailure) as caught:
        source.list_parts()
    assert time.monotonic() - started < 2 + 5
    assert str(caught.value) == f"kafka broker(s) {address} unreachable after 2 s"


def test_unreachable_broker_stops_a_dataflow_within_the_timeout() -> None:
    address = f"127.0.0.1:{free_port()}"
    out: list[Any] = []
    flow = read_flow(KafkaSource([address], "events", connect_timeout_s=1), out)
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_main(flow)
    assert time.monotonic() - started < 1 + 5
    failure = find_cause(caught.value, ConnectionFailure)
    assert failure is not None, caught.value
    assert "unreachable after 1 s" in str(failure)


def test_missing_topic_is_named(kafka_broker: KafkaBroker) -> None:
    source = KafkaSource([kafka_broker.bootstrap], "no-such-topic", connect_timeout_s=5)
    with pytest.raises(ConnectionFailure) as caught:
        source.list_parts()
    assert str(caught.value) == f"topic 'no-such-topic' does not exist on {kafka_broker.bootstrap}"
    # Asking did not create it.
    with pytest.raises(ConnectionFailure):
        topic_partitions([kafka_broker.bootstrap], "no-such-topic", timeout_s=5)


def test_sink_fails_within_the_timeout_when_the_broker_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match="unreachable after 2 s"):
        KafkaSink([address], "triggers", connect_timeout_s=2).build("write", 0, 1)
    assert time.monotonic() - started < 2 + 5
    with pytest.raises(ConnectionFailure, match="unreachable after 1 s"):
        check_brokers([address], timeout_s=1)


def test_ensure_topics_creates_only_missing_topics(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    existing = make_topic(2)
    new = existing + "-new"
    created = ensure_topics([kafka_broker.bootstrap], {existing: 5, new: 3}, timeout_s=5)
    assert created == [new]
    assert topic_partitions([kafka_broker.bootstrap], existing, 5) == [0, 1]
    assert topic_partitions([kafka_broker.bootstrap], new, 5) == [0, 1, 2]

