"""Kafka sink of the live worker, on kafka-python: records keyed by user id, one producer
per worker (its batches delivered by :mod:`flows.kafka_delivery`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from bytewax.outputs import DynamicSink
from kafka import KafkaProducer
from kafka.partitioner.default import DefaultPartitioner, murmur2

from config.connections import KafkaSettings
from flows.kafka import RECONNECT_BACKOFF_MAX_MS, parse_brokers, to_ms, topic_partitions, unreachable
from flows.kafka_delivery import KafkaSinkPartition
from journeyflow.clients import kafka_options, producer_options
from journeyflow.errors import ConfigError
from journeyflow.outages import RetryPolicy

__all__ = ["DEAD_LETTER_HEADROOM", "KafkaSink", "KeyPartitioner", "check_dead_letter_room"]

# Room a dead letter's record needs besides its JSON value (key, headers,
# record and batch framing) below max_request_size.
DEAD_LETTER_HEADROOM = 2048

# Every write_batch ends with a flush, which sends whatever the producer holds at
# once: its linger never delays a record. A long linger and large batches only
# keep kafka-python from cutting a batch every few records and waking its sender
# thread for each (a socket write and a GIL hand-over, measured at about 12 us of
# the worker per record with the defaults of 5 ms and 16 KB).
_LINGER_MS = 1000
_BATCH_BYTES = 256 * 1024


# Keys whose hash a sink's partitioner remembers: a user's records of a moment (a
# segment change, a trigger, a session) reuse it; past this many it starts afresh.
_HASHES_KEPT = 16_384


class KeyPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (Java's murmur2 of the key, so the same
    partition as every Kafka client), with each key's hash remembered.

    Hashing a key in pure Python cost about 6 us of the 7.4 us per record the
    default partitioner took (measured here); a user's records come in bursts,
    so most keys repeat.
    """

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        if topic not in cluster.topics():
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        all_partitions = sorted(cluster.partitions_for_topic(topic))
        hashes = self._hashes
        hashed = hashes.get(serialized_key)
        if hashed is None:
            if len(hashes) >= _HASHES_KEPT:
                hashes.clear()
            hashed = hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        return int(all_partitions[hashed % len(all_partitions)])


class KafkaSink(DynamicSink[Any]):
    """Write records to a topic, keyed by user id (see :func:`~flows.kafka_delivery.record_key`),
    valued by their ``to_json()``; one producer per worker.

    Each batch is flushed and every record acknowledged by all in-sync
    replicas (``acks="all"``) before ``write_batch`` returns, so output is
    durable before bytewax closes the epoch: at-least-once, and one user's
    records stay in order (they share a key, hence a partition; the producer
    is idempotent, so its own retries do not reorder).

    Faults, none of which stops the worker:

    - The broker unreachable, or a topic without a leader: the batch waits,
      with the worker's input paused, for as long as it takes (``policy``:
      capped exponential back-off, an optional give-up deadline that raises
      ``ConnectionFailure``); ``journeyflow_ready`` is 0 and a warning says so
      meanwhile. Records that expired in the producer are sent again.
    - The broker lost the producer's state (restarted empty, fenced): the
      producer is re-created and the unacknowledged records re-sent.
    - A record refused for good (larger than ``max_request_size`` or the
      broker's limit): it becomes a dead letter (code ``undeliverable``,
      bounded by ``max_dead_letter_bytes``) on ``dead_letters_topic``; a dead
      letter refused is cut shorter. Counted in
      ``journeyflow_undeliverable_records_total{topic}``.

    Start-up raises ``ConnectionFailure`` within about ``connect_timeout_s``
    when the brokers do not answer or the topic does not exist (topics are
    never auto-created: see :func:`ensure_topics`), unless not ``required``:
    an output no configured rule can produce (no rule has a holdout) does not
    need its topic; should a record come, the sink waits for the topic.
    """

    def __init__(
        self,
        brokers: Sequence[str] | str,
        topic: str,
        *,
        connect_timeout_s: float = 10,
        client_id: str = "journeyflow",
        linger_ms: int = _LINGER_MS,
        delivery_timeout_s: float = 120,
        options: Mapping[str, Any] | None = None,
        producer: Mapping[str, Any] | None = None,
        max_request_size: int = 1048576,
        dead_letters_topic: str | None = None,
        max_dead_letter_bytes: int = 262144,
        policy: RetryPolicy | None = None,
        required: bool = True,
    ) -> None:
        if not topic:
            msg = f"kafka sink topic must be a non-empty string; got {topic!r} instead"
            raise ConfigError(msg)
        if connect_timeout_s <= 0:
            msg = f"kafka connect_timeout_s must be > 0; got {connect_timeout_s!r} instead"
            raise ConfigError(msg)
        if delivery_timeout_s < 1:
            msg = f"kafka delivery_timeout_s must be >= 1; got {delivery_timeout_s!r} instead"
            raise ConfigError(msg)
        check_dead_letter_room(max_dead_letter_bytes, max_request_size)
        self.brokers = parse_brokers(brokers)
        self.topic = topic
        self.connect_timeout_s = connect_timeout_s
        self.client_id = client_id
        self.linger_ms = linger_ms
        self.delivery_timeout_s = delivery_timeout_s
        # Security options of every client, and the producer's own (acks "all" unless
        # they say otherwise): journeyflow/clients.py.
        self.options = dict(options or {})
        self.producer = {"acks": "all", **(producer or {})}
        self.max_request_size = max_request_size
        self.dead_letters_topic = dead_letters_topic or topic
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self.policy = policy or RetryPolicy()
        self.required = required

    @classmethod
    def from_settings(cls, kafka: KafkaSettings, topic: str, **options: Any) -> KafkaSink:
        """Return a sink to ``topic`` set up by the ``[kafka]`` settings.

        >>> from config.settings import load_settings
        >>> kafka = load_settings(env={}).kafka
        >>> sink = KafkaSink.from_settings(kafka, kafka.triggers_topic)
        >>> sink.brokers, sink.topic, sink.connect_timeout_s, sink.dead_letters_topic
        (['localhost:9092'], 'triggers', 10.0, 'events-dlq')
        """
        client = {"client_id": kafka.client_id, "options": kafka_options(kafka), "producer": producer_options(kafka)}
        options.setdefault("dead_letters_topic", kafka.dead_letters_topic)
        return cls(
            kafka.brokers,
            topic,
            connect_timeout_s=kafka.connect_timeout_s,
            max_request_size=kafka.max_request_size,
            **{**client, **options},
        )

    def check(self) -> list[int]:
        """Return the topic's partitions, or raise ``ConnectionFailure`` within
        ``connect_timeout_s`` (see :meth:`KafkaSource.check`)."""
        return topic_partitions(self.brokers, self.topic, self.connect_timeout_s, self.client_id, self.options)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> KafkaSinkPartition:
        if self.required:
            self.check()
        return KafkaSinkPartition(self, step_id)

    def new_producer(self) -> KafkaProducer:
        """Return a new producer for this sink (also after the broker lost its state)."""
        delivery_ms = to_ms(self.delivery_timeout_s)
        # Kafka requires delivery timeout >= linger + request timeout: a short
        # delivery timeout shortens the linger (it never delays a record anyway).
        linger_ms = min(self.linger_ms, delivery_ms // 4)
        try:
            return KafkaProducer(
                bootstrap_servers=self.brokers,
                client_id=self.client_id,
                linger_ms=linger_ms,
                delivery_timeout_ms=delivery_ms,
                request_timeout_ms=min(30_000, delivery_ms - linger_ms),
                max_request_size=self.max_request_size,
                batch_size=min(_BATCH_BYTES, self.max_request_size),
                partitioner=KeyPartitioner(),
                # send() waits this long for a topic's metadata; the sink's own
                # back-off takes over after that (and logs why it waits).
                max_block_ms=to_ms(min(self.connect_timeout_s, 10)),
                allow_auto_create_topics=False,
                bootstrap_timeout_ms=to_ms(self.connect_timeout_s),
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                **self.options,
                **self.producer,
            )
        except (kafka_errors.KafkaError, OSError) as ex:
            raise unreachable(self.brokers, self.connect_timeout_s) from ex


def check_dead_letter_room(max_dead_letter_bytes: int, max_request_size: int) -> None:
    """Raise ``ConfigError`` unless a bounded dead letter fits in a producer request.

    >>> check_dead_letter_room(262144, 1048576)
    >>> check_dead_letter_room(1048576, 1048576)
    Traceback (most recent call last):
    ...
    journeyflow.errors.ConfigError: input.max_dead_letter_bytes must be <= kafka.max_request_size - 2048 (1046528), so that every dead letter can be sent; got 1048576 instead
    """
    room = max_request_size - DEAD_LETTER_HEADROOM
    if max_dead_letter_bytes > room:
        msg = (
            f"input.max_dead_letter_bytes must be <= kafka.max_request_size - {DEAD_LETTER_HEADROOM} "
            f"({room}), so that every dead letter can be sent; got {max_dead_letter_bytes} instead"
        )
        raise ConfigError(msg)
