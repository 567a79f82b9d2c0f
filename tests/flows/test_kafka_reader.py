"""The live source's reader thread (``flows/kafka_reader.py``) against a real broker (Tansu):
the worker's ``next_batch`` never calls the Kafka client, the reader's buffer stays bounded,
and a reader that fails makes the worker fail instead of going quiet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from flows.kafka_source import KafkaSource

from tests.conftest import KafkaBroker
from tests.flows.kafka_io import keyed_messages, poll_until, produce

pytestmark = pytest.mark.kafka


def test_next_batch_never_calls_the_client_from_the_worker_thread(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    part = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5, batch_size=20).build_part(
        "read", "0", None
    )
    consumer = part._consumer
    worker = threading.get_ident()
    polls_by_thread: dict[int, int] = {}
    poll = consumer.poll

    def counted_poll(*args: Any, **kwargs: Any) -> Any:
        ident = threading.get_ident()
        polls_by_thread[ident] = polls_by_thread.get(ident, 0) + 1
        return poll(*args, **kwargs)

    consumer.poll = counted_poll  # type: ignore[method-assign]
    try:
        expected = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 200))
        got = poll_until(part, 200)
        assert got == expected  # every record once, in offset order, in batches of at most 20
        assert part.snapshot() == 200
        # Every fetch ran in the reader's thread: the worker's 10+ batches made no client call
        # (before, each next_batch polled and blocked on kafka-python's I/O thread).
        assert polls_by_thread.get(worker, 0) == 0
        assert sum(polls_by_thread.values()) >= 1
    finally:
        part.close()


def test_the_reader_holds_a_bounded_number_of_records(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    expected = produce(kafka_broker.bootstrap, topic, keyed_messages(0, 1000))
    part = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5, batch_size=50).build_part(
        "read", "0", None
    )
    try:
        reader = part._reader
        deadline = time.monotonic() + 10
        while reader.waiting() < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # several polls' time: a reader that did not pause would hold all 1,000
        # Paused at twice the batch size, plus at most the one poll that crossed it.
        assert 100 <= reader.waiting() <= 150
        assert part.snapshot() == 0  # fetched is not read: a restart fetches them again
        got = poll_until(part, 1000)
        assert got == expected
        assert part.snapshot() == 1000
    finally:
        part.close()


def test_a_failed_reader_fails_the_worker(kafka_broker: KafkaBroker, make_topic: Callable[..., str]) -> None:
    topic = make_topic(1)
    part = KafkaSource([kafka_broker.bootstrap], topic, connect_timeout_s=5).build_part("read", "0", None)
    try:
        reader = part._reader
        reader.close()  # stop the real thread, then run one whose poll breaks
        reader._stop = False

        def broken_poll(*args: Any, **kwargs: Any) -> Any:
            raise ValueError("broken client")

        part._consumer.poll = broken_poll  # type: ignore[method-assign]
        thread = threading.Thread(target=reader._run)
        thread.start()
        thread.join(5)
        with pytest.raises(RuntimeError, match="kafka reader of .*/0 stopped: ValueError"):
            part.next_batch()
    finally:
        part.close()
