"""KafkaSource, KafkaSink, the topic helpers and the Kafka scripts, against a real
broker (Tansu, started by ``tests/conftest.py``).

How a flow on the never-ending source is stopped: :class:`_UntilCount` wraps
the source under test and passes its batches through unchanged; once the
expected number of records has been read (or a deadline passed, so a bug
fails an assertion instead of hanging), every partition raises
``StopIteration``. That is a clean EOF: bytewax closes the epoch and
snapshots the offsets, so the recovery tests see exactly what a finished
epoch leaves behind. No sleeps decide the outcome, no signals.

Tansu's "latest offset" deviation (``shared/notes/kafka-and-redis-here.md``):
nothing here stops at ``end_offsets``; the one test that starts from
"latest" sends one message per batch, where Tansu's answer is exact.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from flows.kafka import check_brokers, ensure_topics, topic_partitions
from flows.kafka_delivery import record_key
from flows.kafka_sink import KafkaSink
from flows.kafka_source import KafkaSource
from journeyflow.errors import ConnectionFailure
from journeyflow.events import DeadLetter
from journeyflow.metrics import KAFKA_ERRORS, KAFKA_LAG
from journeyflow.records import SegmentChange, Tombstone, Trigger
from journeyflow.step_records import RawRecord

from tests.conftest import KafkaBroker, free_port

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
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


class _UntilCount(FixedPartitionedSource[Any, Any]):
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


def _messages(start: int, count: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"u{i % 7}".encode(), f'{{"n": {i}}}'.encode()) for i in range(start, start + count)]


def read_flow(source: FixedPartitionedSource[Any, Any], out: list[Any]) -> Dataflow:
    flow = Dataflow("kafka_test")
    records = op.input("read", flow, source)
    op.output("collect", records, TestingSink(out))
    return flow


def _cause(ex: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Find ``kind`` in an exception's cause chain (bytewax wraps what sources raise)."""
    seen: BaseException | None = ex
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _poll_until(part: StatefulSourcePartition[Any, Any], count: int, timeout_s: float = 10) -> list[RawRecord]:
    got: list[RawRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got.extend(part.next_batch())
        time.sleep(0.005)
    return got


# --- KafkaSource in a dataflow -----------------------------------------------


def test_source_reads_every_message_once_with_key_and_source(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3)
    special = [(b"\xff\xfe-not-utf8", b"bad key"), (b"u-null", None), (None, b"no key")]
    expected = produce(kafka_broker.bootstrap, topic, _messages(0, 300) + special)
    assert {r.source.split("@")[0] for r in expected} == {f"{topic}/{p}" for p in range(3)}

    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5, batch_size=50)
    assert source.list_parts() == ["0", "1", "2"]
    run_main(read_flow(_UntilCount(source, len(expected)), out), epoch_interval=EPOCH)

    assert sorted(out) == sorted(expected)  # each message once, nothing else
    by_data = {r.data: r for r in out}
    assert by_data[b"bad key"].key is None
    assert by_data[b""].key == "u-null"  # a null value arrives as empty bytes
    assert by_data[b"no key"].key is None
    # Per partition, offsets arrive in order.
    for p in range(3):
        offsets = [int(r.source.rpartition("@")[2]) for r in out if r.source.startswith(f"{topic}/{p}@")]
        assert offsets == sorted(offsets)


def test_source_resumes_after_the_last_finished_epoch(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(3)
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(tmp_path)
    first = produce(kafka_broker.bootstrap, topic, _messages(0, 120))

    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5)
    run_main(read_flow(_UntilCount(source, 120), out), epoch_interval=EPOCH, recovery_config=recovery)
    assert sorted(out) == sorted(first)

    second = produce(kafka_broker.bootstrap, topic, _messages(120, 45))
    out2: list[RawRecord] = []
    run_main(read_flow(_UntilCount(source, 45), out2), epoch_interval=EPOCH, recovery_config=recovery)
    # Only the new messages: the snapshot is the next offset, not the last one read.
    assert sorted(out2) == sorted(second)


def test_source_spreads_partitions_over_three_workers(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3)
    expected = produce(kafka_broker.bootstrap, topic, _messages(0, 90))
    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5)
    flow = read_flow(_UntilCount(source, 90), out)
    cluster_main(flow, [], 0, epoch_interval=EPOCH, worker_count_per_proc=3)
    assert sorted(out) == sorted(expected)


# --- KafkaSource partitions, driven by hand ----------------------------------


def test_start_from_latest_skips_old_messages_and_never_blocks(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    # One message per batch: Tansu's end offset is exact then (see module docstring).
    for i in range(5):
        produce(kafka_broker.bootstrap, topic, [(b"old", f"old {i}".encode())])
    source = KafkaSource([kafka_broker.bootstrap], topic, start_from="latest", connect_timeout_s=5)
    part = source.build_part("read", "0", None)
    try:
        assert part.snapshot() == 5
        for _ in range(20):
            started = time.monotonic()
            assert part.next_batch() == []
            assert time.monotonic() - started < 0.5
            awake = part.next_awake()
            assert awake is not None
            assert timedelta(0) < awake - datetime.now(timezone.utc) <= timedelta(milliseconds=60)
        [new] = produce(kafka_broker.bootstrap, topic, [(b"u1", b"new")])
        assert _poll_until(part, 1) == [new]
        assert new.source == f"{topic}/0@5"
        assert part.snapshot() == 6
        assert part.next_awake() is None  # data flowed: no back-off
        # Lag is exported per partition (0: everything read).
        assert KAFKA_LAG.labels(topic=topic, partition="0")._value.get() == 0
    finally:
        part.close()


def test_source_resumes_from_a_given_offset(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    expected = produce(kafka_broker.bootstrap, topic, _messages(0, 10))
    part = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5).build_part("read", "0", 7)
    try:
        assert _poll_until(part, 3) == expected[7:]
        assert part.snapshot() == 10
    finally:
        part.close()


def test_source_rides_out_a_frozen_broker(spawn_kafka: Callable[[], KafkaBroker]) -> None:
    broker = spawn_kafka()
    ensure_topics([broker.bootstrap], {"events": 1}, timeout_s=5)
    first = produce(broker.bootstrap, "events", _messages(0, 10))
    part = KafkaSource([broker.bootstrap], "events", connect_timeout_s=5).build_part("read", "0", None)
    try:
        assert _poll_until(part, 10) == first
        with broker.paused():
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert part.next_batch() == []
                # A blocking poll would wait for the frozen broker (seconds); this one only
                # hands over to the client's I/O thread (about 1 ms, more on a busy machine).
                assert time.monotonic() - started < 0.5
                time.sleep(0.02)
        second = produce(broker.bootstrap, "events", _messages(10, 10))
        assert _poll_until(part, 10) == second  # nothing lost, nothing repeated
        assert part.snapshot() == 20
    finally:
        part.close()


def test_source_warns_while_the_broker_is_gone_and_reconnects(
    spawn_kafka: Callable[[], KafkaBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = spawn_kafka()
    ensure_topics([broker.bootstrap], {"events": 1}, timeout_s=5)
    produce(broker.bootstrap, "events", _messages(0, 5))
    part = KafkaSource([broker.bootstrap], "events", connect_timeout_s=5).build_part("read", "0", None)
    errors_before = KAFKA_ERRORS._value.get()
    caplog.set_level(logging.WARNING, logger="journeyflow.kafka")
    try:
        assert len(_poll_until(part, 5)) == 5
        broker.stop()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert part.next_batch() == []
            assert time.monotonic() - started < 0.5
            time.sleep(0.02)
        warnings = [r for r in caplog.records if r.name == "journeyflow.kafka"]
        assert [r.getMessage() for r in warnings] == ["kafka broker unreachable; retrying"]
        assert warnings[0].partition == "events/0"
        assert KAFKA_ERRORS._value.get() > errors_before
        assert part.snapshot() == 5

        # Tansu keeps topics in memory: the restarted broker starts empty, so
        # this proves reconnection, not retention (Kafka would keep the data).
        broker.start()
        ensure_topics([broker.bootstrap], {"events": 1}, timeout_s=5)
        produce(broker.bootstrap, "events", _messages(0, 10))
        got = _poll_until(part, 1, timeout_s=15)
        assert got, "no record after the broker came back"
        assert any(r.getMessage() == "kafka broker reachable again" for r in caplog.records)
    finally:
        part.close()


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
    failure = _cause(caught.value, ConnectionFailure)
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


# --- KafkaSink ------------------------------------------------------------------


def _consume_all(bootstrap: str, topic: str, count: int, timeout_s: float = 10) -> list[Any]:
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

    got = _consume_all(kafka_broker.bootstrap, topic, len(records))
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


# --- scripts ----------------------------------------------------------------------


def _script(name: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_produce_events_sends_every_line_keyed_by_user(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"produce-{free_port()}"
    lines = [
        orjson.dumps({"event_id": "e1", "type": "page_view", "user_id": "u1", "ts": "2026-11-22T10:00:00Z"}),
        orjson.dumps({"event_id": "e2", "type": "page_view", "anonymous_id": "a9", "ts": "2026-11-22T10:00:00.100Z"}),
        b"{not json",
        orjson.dumps({"event_id": "e3", "type": "page_view", "user_id": "u1", "ts": "2026-11-22T10:00:00.200Z"}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = _script(
        "produce_events.py", str(events), "--brokers", kafka_broker.bootstrap, "--topic", topic,
        "--create-topic", "--partitions", "3", "--speedup", "1",
    )
    started = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.startswith("sent 4 events"), stdout
    # --speedup 1 follows the events' own clock: 0.2 s from first to last.
    assert time.monotonic() - started >= 0.2

    got = _consume_all(kafka_broker.bootstrap, topic, 4)
    assert sorted((m.key or b"", m.value) for m in got) == sorted(
        [(b"u1", lines[0]), (b"a9", lines[1]), (b"", lines[2]), (b"u1", lines[3])]
    )


def test_scripts_exit_2_with_one_line_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1"}\n')
    address = f"127.0.0.1:{free_port()}"
    for proc in (
        _script("produce_events.py", str(events), "--brokers", address),
        _script("tail_triggers.py", "--brokers", address),
    ):
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert stderr.strip().count("\n") == 0, stderr
        assert f"kafka broker(s) {address} unreachable after 1 s" in stderr


def test_tail_triggers_prints_one_line_per_trigger(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    trigger = Trigger("t1", "cart_abandonment", "u42", 1_795_343_460_000, "e-990", "treatment",
                      {"products": ["sku-7"], "cart_value": 59.0})
    produce(kafka_broker.bootstrap, topic, [(b"u42", trigger.to_json()), (None, b"not json")])
    proc = _script("tail_triggers.py", "--brokers", kafka_broker.bootstrap, "--topic", topic,
                   "--from-beginning")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert first.split() == [
        "2026-11-22T10:31:00Z", "cart_abandonment", "treatment", "u42",
        '{"products":["sku-7"],"cart_value":59.0}',
    ]
    assert "not json" in second
    assert proc.returncode == 0, stderr
