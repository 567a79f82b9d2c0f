"""Kafka source of the live worker, on kafka-python: one bytewax partition per Kafka partition.

Tansu, the broker used in tests, deviates from Kafka in one way that matters
here: its ListOffsets "latest" (``end_offsets``, ``seek_to_end``) is the base
offset of the last record batch plus one, not the offset after the last
record. ``start_from="latest"`` may therefore re-read the last batch there.
The high watermark that fetches return (used for the lag gauge) was exact in
our checks. Apache Kafka gets both right.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from bytewax.inputs import FixedPartitionedSource
from kafka import KafkaConsumer, TopicPartition

from config.connections import KafkaSettings
from flows.kafka import RECONNECT_BACKOFF_MAX_MS, parse_brokers, to_ms, topic_partitions, unreachable
from flows.kafka_partition import KafkaPartition
from journeyflow.clients import kafka_options
from journeyflow.errors import ConfigError
from journeyflow.step_records import RawRecord

__all__ = ["KafkaSource"]

log = logging.getLogger("journeyflow.kafka")

_START_FROM = ("earliest", "latest")


class KafkaSource(FixedPartitionedSource[RawRecord, int]):
    """Read a topic as :class:`~journeyflow.step_records.RawRecord`, one bytewax partition
    per Kafka partition.

    Each message becomes ``RawRecord(data, "topic/partition@offset", key)``:
    a null value becomes ``b""`` and a key that is not UTF-8 becomes ``None``.
    Order is kept within a Kafka partition (hence per user, as producers key
    by user id); there is no order across partitions.

    Resume: the snapshot is the next offset to read, so a restart continues
    right after the last finished epoch. With no snapshot, reading starts at
    the beginning or the end of each partition (``start_from``). A resume
    offset the broker no longer holds (retention) restarts at the earliest
    offset still held. No consumer group is used and nothing is committed.

    Start-up raises ``ConnectionFailure`` within ``connect_timeout_s`` when
    the brokers do not answer or the topic does not exist. ``next_batch``
    never blocks; empty polls back off 2 to 20 ms. Keep the partition count
    a multiple of the total worker count (bytewax trap 6).

    :arg brokers: ``host:port`` strings (or one comma-separated string).
    :arg topic: the topic to read.
    :arg start_from: ``"earliest"`` or ``"latest"``, used only without a snapshot.
    :arg connect_timeout_s: start-up deadline, per step.
    :arg batch_size: most records returned per ``next_batch``.
    :arg client_id: the Kafka client id (broker logs and quotas).
    :arg options: security options of the clients (:func:`journeyflow.clients.kafka_options`).
    """

    def __init__(
        self,
        brokers: Sequence[str] | str,
        topic: str,
        *,
        start_from: str = "earliest",
        connect_timeout_s: float = 10,
        batch_size: int = 1000,
        client_id: str = "journeyflow",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not topic:
            msg = f"kafka source topic must be a non-empty string; got {topic!r} instead"
            raise ConfigError(msg)
        if start_from not in _START_FROM:
            allowed = ", ".join(_START_FROM)
            msg = f"kafka start_from must be one of {allowed}; got {start_from!r} instead"
            raise ConfigError(msg)
        if connect_timeout_s <= 0:
            msg = f"kafka connect_timeout_s must be > 0; got {connect_timeout_s!r} instead"
            raise ConfigError(msg)
        if batch_size < 1:
            msg = f"kafka batch_size must be >= 1; got {batch_size!r} instead"
            raise ConfigError(msg)
        self.brokers = parse_brokers(brokers)
        self.topic = topic
        self.start_from = start_from
        self.connect_timeout_s = connect_timeout_s
        self.batch_size = batch_size
        self.client_id = client_id
        self.options = dict(options or {})

    @classmethod
    def from_settings(
        cls, kafka: KafkaSettings, topic: str | None = None, **options: Any
    ) -> KafkaSource:
        """Return a source set up by the ``[kafka]`` settings, reading
        ``kafka.events_topic`` unless ``topic`` is given.

        >>> from config.settings import load_settings
        >>> source = KafkaSource.from_settings(load_settings(env={}).kafka)
        >>> source.brokers, source.topic, source.start_from, source.connect_timeout_s
        (['localhost:9092'], 'events', 'earliest', 10.0)
        """
        return cls(
            kafka.brokers,
            topic or kafka.events_topic,
            start_from=kafka.start_from,
            connect_timeout_s=kafka.connect_timeout_s,
            **{"client_id": kafka.client_id, "options": kafka_options(kafka), **options},
        )

    def check(self) -> list[int]:
        """Return the topic's partitions, or raise ``ConnectionFailure`` within
        ``connect_timeout_s``.

        Call it before running the flow for a one-line error: bytewax wraps
        what ``list_parts`` raises in ``BytewaxRuntimeError`` chains.
        """
        return topic_partitions(self.brokers, self.topic, self.connect_timeout_s, self.client_id, self.options)

    def list_parts(self) -> list[str]:
        return [str(p) for p in self.check()]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> KafkaPartition:
        if resume_state is not None and (
            not isinstance(resume_state, int) or isinstance(resume_state, bool) or resume_state < 0
        ):
            msg = (
                f"resume state of kafka partition {self.topic}/{for_part} in step {step_id!r} "
                f"must be an offset (int >= 0); got {resume_state!r} instead"
            )
            raise ValueError(msg)
        tp = TopicPartition(self.topic, int(for_part))
        consumer = self._consumer()
        try:
            consumer.assign([tp])
            offset = self._start_offset(consumer, tp) if resume_state is None else resume_state
            consumer.seek(tp, offset)
        except BaseException:
            consumer.close(autocommit=False)
            raise
        log.info(
            "kafka partition assigned",
            extra={"step_id": step_id, "partition": f"{tp.topic}/{tp.partition}", "offset": offset,
                   "resumed": resume_state is not None},
        )
        return KafkaPartition(consumer, tp, offset, self.batch_size)

    def _consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=self.brokers,
                client_id=self.client_id,
                group_id=None,
                enable_auto_commit=False,
                # Only used when a resume offset is out of range: the records it
                # pointed at were deleted, so the oldest still held come next.
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                bootstrap_timeout_ms=to_ms(self.connect_timeout_s),
                max_poll_records=self.batch_size,
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                # Apache Kafka answers a fetch as soon as records arrive; some
                # Kafka-protocol brokers (Tansu) hold it longer, up to the whole
                # fetch_max_wait (500 ms by default), which would be the trigger
                # latency. Measured against Tansu, a record sent at a random
                # moment reached a polling consumer after 9 ms (median; 29 ms
                # p90) with 50 ms, 6.5 ms (9.4 ms p90) with 10 ms; an idle
                # partition then costs 100 empty fetches a second.
                fetch_max_wait_ms=10,
                **self.options,
            )
        except (kafka_errors.KafkaError, OSError) as ex:
            raise unreachable(self.brokers, self.connect_timeout_s) from ex

    def _start_offset(self, consumer: KafkaConsumer, tp: TopicPartition) -> int:
        # Resolved now, not left to the consumer, so that the very first
        # snapshot already holds a concrete offset: a restart before any
        # message arrived must not jump to a newer "latest".
        timeout_ms = to_ms(self.connect_timeout_s)
        try:
            if self.start_from == "earliest":
                offsets = consumer.beginning_offsets([tp], timeout_ms=timeout_ms)
            else:
                offsets = consumer.end_offsets([tp], timeout_ms=timeout_ms)
        except (kafka_errors.KafkaError, OSError) as ex:
            raise unreachable(self.brokers, self.connect_timeout_s) from ex
        return int(offsets[tp])
