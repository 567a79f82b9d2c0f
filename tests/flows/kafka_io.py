"""Producing to, reading from and consuming the test broker, for the Kafka tests
(``test_kafka_*.py``).

How a flow on the never-ending source is stopped: :class:`UntilCount` wraps
the source under test and passes its batches through unchanged; once the
expected number of records has been read (or a deadline passed, so a bug
fails an assertion instead of hanging), every partition raises
``StopIteration``. That is a clean EOF: bytewax closes the epoch and
snapshots the offsets, so the recovery tests see exactly what a finished
epoch leaves behind. No sleeps decide the outcome, no signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from flows.kafka import topic_partitions
from flows.kafka_source import KafkaSource
from journeyflow.step_records import RawRecord


EPOCH = timedelta(milliseconds=200)


class _Counter:
    def __init__(self, expected: int, timeout_s: float) -> None:
        self.expected = expected
        self.read = 0
        self.deadline = time.monotonic() + timeout_s
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.read += n

    def done(self) -> bool:
        return self.read >= self.expected or time.monotonic() > self.deadline


class _UntilCountPartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], counter: _Counter) -> None:
        self.inner = inner
        self.counter = counter

    def next_batch(self) -> list[Any]:
        if self.counter.done():
            raise StopIteration()
        batch = list(self.inner.next_batch())
        self.counter.add(len(batch))
        return batch

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class UntilCount(FixedPartitionedSource[Any, Any]):
    """End ``source`` once ``expected`` records were read across its partitions."""

    def __init__(self, source: KafkaSource, expected: int, timeout_s: float = 20) -> None:
        self.source = source
        self.counter = _Counter(expected, timeout_s)

    def list_parts(self) -> list[str]:
        return self.source.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _UntilCountPartition:
        return _UntilCountPartition(self.source.build_part(step_id, for_part, resume_state), self.counter)


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]) -> list[RawRecord]:
    """Send ``(key, value)`` messages; return the RawRecords the source must make of them."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5)
    try:
        sent = [(key, value, producer.send(topic, key=key, value=value)) for key, value in messages]
        producer.flush()
        expected = []
        for key, value, future in sent:
            meta = future.get(timeout=10)
            try:
                text_key = key.decode("utf-8") if key is not None else None
            except UnicodeDecodeError:
                text_key = None
            expected.append(
                RawRecord(value or b"", f"{topic}/{meta.partition}@{meta.offset}", text_key)
            )
        return expected
    finally:
        producer.close()


def keyed_messages(start: int, count: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"u{i % 7}".encode(), f'{{"n": {i}}}'.encode()) for i in range(start, start + count)]


def read_flow(source: FixedPartitionedSource[Any, Any], out: list[Any]) -> Dataflow:
    flow = Dataflow("kafka_test")
    records = op.input("read", flow, source)
    op.output("collect", records, TestingSink(out))
    return flow


def find_cause(ex: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Find ``kind`` in an exception's cause chain (bytewax wraps what sources raise)."""
    seen: BaseException | None = ex
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def poll_until(part: StatefulSourcePartition[Any, Any], count: int, timeout_s: float = 10) -> list[RawRecord]:
    got: list[RawRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got.extend(part.next_batch())
        time.sleep(0.005)
    return got



def consume_all(bootstrap: str, topic: str, count: int, timeout_s: float = 10) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in topic_partitions([bootstrap], topic, 5)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
        return got
    finally:
        consumer.close()
