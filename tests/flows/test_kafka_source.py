"""KafkaSource against a real broker (Tansu, started by ``tests/conftest.py``): in a
dataflow, and its partitions driven by hand. How a flow on the never-ending source is
stopped: ``tests/flows/kafka_io.py``.

Tansu's "latest offset" deviation (``shared/notes/kafka-and-redis-here.md``):
nothing here stops at ``end_offsets``; the one test that starts from
"latest" sends one message per batch, where Tansu's answer is exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from flows.kafka import ensure_topics
from flows.kafka_source import KafkaSource
from journeyflow.metrics import KAFKA_ERRORS, KAFKA_LAG
from journeyflow.step_records import RawRecord

from tests.conftest import KafkaBroker
from tests.flows.kafka_io import EPOCH, UntilCount, keyed_messages, poll_until, produce, read_flow

pytestmark = pytest.mark.kafka


# --- KafkaSource in a dataflow -----------------------------------------------


def test_source_reads_every_message_once_with_key_and_source(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3)
    special = [(b"\xff\xfe-not-utf8", b"bad key"), (b"u-null", None), (None, b"no key")]
    expected = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 300) + special)
    assert {r.source.split("@")[0] for r in expected} == {f"{topic}/{p}" for p in range(3)}

    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5, batch_size=50)
    assert source.list_parts() == ["0", "1", "2"]
    run_main(read_flow(UntilCount(source, len(expected)), out), epoch_interval=EPOCH)

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
    first = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 120))

    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5)
    run_main(read_flow(UntilCount(source, 120), out), epoch_interval=EPOCH, recovery_config=recovery)
    assert sorted(out) == sorted(first)

    second = produce(kafka_broker.bootstrap, topic, keyed_messages(120, 45))
    out2: list[RawRecord] = []
    run_main(read_flow(UntilCount(source, 45), out2), epoch_interval=EPOCH, recovery_config=recovery)
    # Only the new messages: the snapshot is the next offset, not the last one read.
    assert sorted(out2) == sorted(second)


def test_source_spreads_partitions_over_three_workers(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3)
    expected = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 90))
    out: list[RawRecord] = []
    source = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5)
    flow = read_flow(UntilCount(source, 90), out)
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
        assert poll_until(part, 1) == [new]
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
    expected = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 10))
    part = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5).build_part("read", "0", 7)
    try:
        assert poll_until(part, 3) == expected[7:]
        assert part.snapshot() == 10
    finally:
        part.close()


def test_source_rides_out_a_frozen_broker(spawn_kafka: Callable[[], KafkaBroker]) -> None:
    broker = spawn_kafka()
    ensure_topics([broker.bootstrap], {"events": 1}, timeout_s=5)
    first = produce(broker.bootstrap, "events", keyed_messages(0, 10))
    part = KafkaSource([broker.bootstrap], "events", connect_timeout_s=5).build_part("read", "0", None)
    try:
        assert poll_until(part, 10) == first
        with broker.paused():
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert part.next_batch() == []
                # A blocking poll would wait for the frozen broker (seconds); this one only
                # hands over to the client's I/O thread (about 1 ms, more on a busy machine).
                assert time.monotonic() - started < 0.5
                time.sleep(0.02)
        second = produce(broker.bootstrap, "events", keyed_messages(10, 10))
        assert poll_until(part, 10) == second  # nothing lost, nothing repeated
        assert part.snapshot() == 20
    finally:
        part.close()


def test_source_warns_while_the_broker_is_gone_and_reconnects(
    spawn_kafka: Callable[[], KafkaBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = spawn_kafka()
    ensure_topics([broker.bootstrap], {"events": 1}, timeout_s=5)
    produce(broker.bootstrap, "events", keyed_messages(0, 5))
    part = KafkaSource([broker.bootstrap], "events", connect_timeout_s=5).build_part("read", "0", None)
    errors_before = KAFKA_ERRORS._value.get()
    caplog.set_level(logging.WARNING, logger="journeyflow.kafka")
    try:
        assert len(poll_until(part, 5)) == 5
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
        produce(broker.bootstrap, "events", keyed_messages(0, 10))
        got = poll_until(part, 1, timeout_s=15)
        assert got, "no record after the broker came back"
        assert any(r.getMessage() == "kafka broker reachable again" for r in caplog.records)
    finally:
        part.close()

