"""Kafka source and sink of the live worker, on kafka-python.

:class:`KafkaSource` reads one topic with one bytewax partition per Kafka
partition; :class:`KafkaSink` writes records keyed by user id. Neither uses
consumer groups: bytewax owns the partition assignment and keeps the read
offsets in its recovery store, so a restart resumes exactly after the last
finished epoch, and outputs are at-least-once (the sink flushes before an
epoch can close; the source re-reads what the unfinished epoch had read).

Start-up is bounded: an unreachable broker or a missing topic raises
:class:`~journeyflow.errors.ConnectionFailure` within ``connect_timeout_s``
(bytewax's stock connector waits forever, ``shared/notes/bytewax-0.21.md``
trap 4). Once running, a broker that goes away is waited for, with a warning
on the ``journeyflow.kafka`` logger: the source backs off and resumes where
it was; the sink's producer retries until its delivery timeout.

Tansu, the broker used in tests, deviates from Kafka in one way that matters
here: its ListOffsets "latest" (``end_offsets``, ``seek_to_end``) is the base
offset of the last record batch plus one, not the offset after the last
record. ``start_from="latest"`` may therefore re-read the last batch there.
The high watermark that fetches return (used for the lag gauge) was exact in
our checks. Apache Kafka gets both right.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import kafka.errors as kafka_errors
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from config.settings import KafkaSettings
from journeyflow.clients import check_kafka_tls, explain_kafka_failure, kafka_options, producer_options
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.events import DeadLetter
from journeyflow.metrics import EVENTS_READ, KAFKA_ERRORS, KAFKA_LAG, UNDELIVERABLE, service_down, service_up
from journeyflow.outages import Outage, RetryPolicy
from journeyflow.records import RawRecord

__all__ = [
    "KafkaSource",
    "KafkaSink",
    "record_key",
    "parse_brokers",
    "check_brokers",
    "ensure_topics",
    "missing_topics",
    "topic_partitions",
    "check_dead_letter_room",
    "DEAD_LETTER_HEADROOM",
]

log = logging.getLogger("journeyflow.kafka")

_START_FROM = ("earliest", "latest")
# Back-off of a partition whose poll came back empty: 10 ms, doubling to
# 50 ms, so an idle worker neither spins nor adds more than 50 ms of latency.
_IDLE_MIN_S = 0.01
_IDLE_MAX_S = 0.05
# While the partition's leader is unreachable, nothing can arrive: poll less.
_OUTAGE_MAX_S = 1.0
# A leader connection down for this long is an outage worth a warning
# (shorter blips are kafka-python reconnecting an idle connection).
_OUTAGE_GRACE_S = 1.0
# kafka-python's default is 30 s: after an outage the worker would wait up to
# that long to reconnect. One connection attempt per client every 2 s is cheap.
_RECONNECT_BACKOFF_MAX_MS = 2000


def parse_brokers(text: str | Sequence[str]) -> list[str]:
    """Return a broker list from ``"h1:9092,h2:9092"`` (the setting) or a list.

    >>> parse_brokers("k1:9092, k2:9092")
    ['k1:9092', 'k2:9092']
    >>> parse_brokers("localhost")
    Traceback (most recent call last):
    ...
    journeyflow.errors.ConfigError: kafka brokers must be host:port; got 'localhost' instead
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    brokers = [part.strip() for part in parts if part.strip()]
    if not brokers:
        msg = f"kafka brokers must name at least one host:port; got {text!r} instead"
        raise ConfigError(msg)
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            msg = f"kafka brokers must be host:port; got {broker!r} instead"
            raise ConfigError(msg)
    return brokers


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _hosts(brokers: Sequence[str]) -> str:
    return ",".join(brokers)


def _unreachable(brokers: Sequence[str], timeout_s: float) -> ConnectionFailure:
    return ConnectionFailure(f"kafka broker(s) {_hosts(brokers)} unreachable after {timeout_s:g} s")


def _admin(
    brokers: Sequence[str], timeout_s: float, client_id: str, options: Mapping[str, Any] | None = None
) -> KafkaAdminClient:
    # options: security settings from journeyflow/clients.py (TLS, SASL).
    options = options or {}
    check_kafka_tls(brokers, timeout_s, options)
    try:
        return KafkaAdminClient(
            bootstrap_servers=list(brokers),
            client_id=client_id,
            bootstrap_timeout_ms=_ms(timeout_s),
            request_timeout_ms=_ms(timeout_s),
            reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
            **options,
        )
    except (kafka_errors.KafkaError, OSError) as ex:
        raise ConnectionFailure(explain_kafka_failure(brokers, timeout_s, options, ex)) from ex


def check_brokers(
    brokers: Sequence[str], timeout_s: float, client_id: str = "journeyflow",
    options: Mapping[str, Any] | None = None,
) -> None:
    """Return once a broker of ``brokers`` answers; raise ``ConnectionFailure``
    after ``timeout_s`` seconds otherwise."""
    _admin(parse_brokers(brokers), timeout_s, client_id, options).close()


def topic_partitions(
    brokers: Sequence[str], topic: str, timeout_s: float, client_id: str = "journeyflow",
    options: Mapping[str, Any] | None = None,
) -> list[int]:
    """Return the partition ids of ``topic``, sorted.

    Raises ``ConnectionFailure`` when no broker answers within ``timeout_s``
    or the topic does not exist. Never creates the topic (the metadata
    request asks brokers not to auto-create it).
    """
    brokers = parse_brokers(brokers)
    admin = _admin(brokers, timeout_s, client_id, options)
    try:
        described = admin.describe_topics([topic])
    except (kafka_errors.KafkaError, OSError) as ex:
        raise _unreachable(brokers, timeout_s) from ex
    finally:
        admin.close()
    info = next((t for t in described if t.get("name") == topic), None)
    error = kafka_errors.for_code(info["error_code"]) if info is not None else None
    if info is None or error is kafka_errors.UnknownTopicOrPartitionError:
        msg = f"topic {topic!r} does not exist on {_hosts(brokers)}"
        raise ConnectionFailure(msg)
    if error is not kafka_errors.NoError:
        msg = f"topic {topic!r} on {_hosts(brokers)} cannot be read: {error.__name__}"
        raise ConnectionFailure(msg)
    partitions = sorted(p["partition_index"] for p in info["partitions"])
    if not partitions:
        msg = f"topic {topic!r} on {_hosts(brokers)} has no partitions"
        raise ConnectionFailure(msg)
    return partitions


def missing_topics(
    brokers: Sequence[str],
    topics: Sequence[str],
    timeout_s: float,
    client_id: str = "journeyflow",
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Return the names of ``topics`` that do not exist, in the given order (one request).

    Raises ``ConnectionFailure`` when no broker answers within ``timeout_s``.
    Never creates a topic.
    """
    brokers = parse_brokers(brokers)
    admin = _admin(brokers, timeout_s, client_id, options)
    try:
        existing = set(admin.list_topics())
    except (kafka_errors.KafkaError, OSError) as ex:
        raise _unreachable(brokers, timeout_s) from ex
    finally:
        admin.close()
    return [name for name in dict.fromkeys(topics) if name not in existing]


def ensure_topics(
    brokers: Sequence[str],
    topics: dict[str, int],
    timeout_s: float,
    client_id: str = "journeyflow",
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics of ``topics`` (name -> partition count) that do not exist.

    Returns the names created. Existing topics are left as they are, even
    with another partition count. Replication uses the broker's default.
    Raises ``ConnectionFailure`` when no broker answers within ``timeout_s``.
    """
    for name, count in topics.items():
        if not isinstance(count, int) or count < 1:
            msg = f"partitions of topic {name!r} must be an integer >= 1; got {count!r} instead"
            raise ConfigError(msg)
    brokers = parse_brokers(brokers)
    admin = _admin(brokers, timeout_s, client_id, options)
    try:
        existing = set(admin.list_topics())
        missing = {name: count for name, count in topics.items() if name not in existing}
        if not missing:
            return []
        result = admin.create_topics(
            {name: {"num_partitions": count} for name, count in missing.items()},
            timeout_ms=_ms(timeout_s),
            raise_errors=False,
        )
        for entry in result["topics"]:
            error = kafka_errors.for_code(entry["error_code"])
            # Someone else creating it at the same time is as good as us doing it.
            if error not in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                name = entry["name"]
                msg = f"cannot create topic {name!r} on {_hosts(brokers)}: {error.__name__}"
                raise ConnectionFailure(msg)
        admin.wait_for_topics(list(missing), timeout_ms=_ms(timeout_s))
    except (kafka_errors.KafkaError, OSError) as ex:
        raise _unreachable(brokers, timeout_s) from ex
    finally:
        admin.close()
    log.info("created kafka topics", extra={"topics": missing})
    return list(missing)


def _decode_key(key: bytes | None) -> str | None:
    """Return the message key as text; a key that is not UTF-8 counts as none.

    >>> _decode_key(b"u42"), _decode_key(b"\\xff"), _decode_key(None)
    ('u42', None, None)
    """
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _KafkaPartition(StatefulSourcePartition[RawRecord, int]):
    """One Kafka partition, read by its own consumer from an explicit offset."""

    def __init__(
        self, consumer: KafkaConsumer, tp: TopicPartition, next_offset: int, batch_size: int
    ) -> None:
        self._consumer = consumer
        self._tp = tp
        self._next_offset = next_offset
        self._batch_size = batch_size
        self._label = f"{tp.topic}/{tp.partition}"
        self._idle_s = 0.0
        self._awake: datetime | None = None
        self._down_since: float | None = None
        self._outage = False
        self._lag = KAFKA_LAG.labels(topic=tp.topic, partition=str(tp.partition))
        self._read = EVENTS_READ.labels(source=f"kafka:{tp.topic}")

    def next_batch(self) -> list[RawRecord]:
        try:
            polled = self._consumer.poll(timeout_ms=0, max_records=self._batch_size)
        except kafka_errors.KafkaError as ex:
            # Nothing was returned, so the offset did not move: retrying loses nothing.
            KAFKA_ERRORS.inc()
            log.warning(
                "kafka poll failed; retrying",
                extra={"partition": self._label, "offset": self._next_offset, "error": repr(ex)},
            )
            self._back_off(_OUTAGE_MAX_S)
            return []
        messages = polled.get(self._tp)
        if messages and messages[0].offset < self._next_offset:
            # Offsets went back: the topic was deleted and re-created (or the
            # client re-delivered). Pass them on: dropping them could lose new
            # events, while repeats are caught downstream by event id.
            log.warning(
                "kafka offsets went back; reading on from the lower offset",
                extra={"partition": self._label, "expected": self._next_offset,
                       "got": messages[0].offset},
            )
        if not messages:
            self._check_leader()
            self._back_off(_OUTAGE_MAX_S if self._outage else _IDLE_MAX_S)
            self._update_lag()
            return []
        label = self._label
        batch = [
            RawRecord(
                m.value if m.value is not None else b"",
                f"{label}@{m.offset}",
                _decode_key(m.key),
            )
            for m in messages
        ]
        # Resume reading from the next message, not this one.
        self._next_offset = messages[-1].offset + 1
        self._idle_s = 0.0
        self._awake = None
        if self._outage or self._down_since is not None:
            self._recovered()
        self._read.inc(len(batch))
        self._update_lag()
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next_offset

    def close(self) -> None:
        if self._outage:
            service_up("kafka")
            self._outage = False
        self._consumer.close(autocommit=False)

    def _back_off(self, limit_s: float) -> None:
        self._idle_s = min(max(self._idle_s * 2, _IDLE_MIN_S), limit_s)
        self._awake = datetime.now(timezone.utc) + timedelta(seconds=self._idle_s)

    def _update_lag(self) -> None:
        highwater = self._consumer.highwater(self._tp)
        if highwater is not None:
            self._lag.set(max(0, highwater - self._next_offset))

    def _leader_connected(self) -> bool:
        # kafka-python reconnects by itself and poll() does not raise while the
        # broker is away; its connection state is the only cheap signal (no I/O).
        # It is not public API: if it changes, report "connected" rather than fail.
        try:
            client = self._consumer._client
            leader = client.cluster.leader_for_partition(self._tp)
            return leader is not None and leader >= 0 and bool(client.connected(leader))
        except Exception:  # noqa: BLE001 - private API; see above
            return True

    def _check_leader(self) -> None:
        if self._leader_connected():
            if self._outage or self._down_since is not None:
                self._recovered()
            return
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        elif not self._outage and now - self._down_since >= _OUTAGE_GRACE_S:
            self._outage = True
            service_down("kafka")
            KAFKA_ERRORS.inc()
            log.warning(
                "kafka broker unreachable; retrying",
                extra={"partition": self._label, "offset": self._next_offset},
            )

    def _recovered(self) -> None:
        if self._outage:
            service_up("kafka")
            down_s = time.monotonic() - (self._down_since or time.monotonic())
            log.warning(
                "kafka broker reachable again",
                extra={
                    "partition": self._label,
                    "offset": self._next_offset,
                    "down_s": round(down_s, 1),
                },
            )
        self._outage = False
        self._down_since = None


class KafkaSource(FixedPartitionedSource[RawRecord, int]):
    """Read a topic as :class:`~journeyflow.records.RawRecord`, one bytewax partition
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
    never blocks; empty polls back off 10 to 50 ms. Keep the partition count
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

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
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
        return _KafkaPartition(consumer, tp, offset, self.batch_size)

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
                bootstrap_timeout_ms=_ms(self.connect_timeout_s),
                max_poll_records=self.batch_size,
                reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
                # Apache Kafka answers a fetch as soon as records arrive; some
                # Kafka-protocol brokers (Tansu) wait the whole fetch_max_wait,
                # 500 ms by default, which would be the trigger latency.
                fetch_max_wait_ms=50,
                **self.options,
            )
        except (kafka_errors.KafkaError, OSError) as ex:
            raise _unreachable(self.brokers, self.connect_timeout_s) from ex

    def _start_offset(self, consumer: KafkaConsumer, tp: TopicPartition) -> int:
        # Resolved now, not left to the consumer, so that the very first
        # snapshot already holds a concrete offset: a restart before any
        # message arrived must not jump to a newer "latest".
        timeout_ms = _ms(self.connect_timeout_s)
        try:
            if self.start_from == "earliest":
                offsets = consumer.beginning_offsets([tp], timeout_ms=timeout_ms)
            else:
                offsets = consumer.end_offsets([tp], timeout_ms=timeout_ms)
        except (kafka_errors.KafkaError, OSError) as ex:
            raise _unreachable(self.brokers, self.connect_timeout_s) from ex
        return int(offsets[tp])


_MISSING = object()


def record_key(record: Any) -> bytes | None:
    """Return the Kafka message key of an output record: its user id, UTF-8.

    Records carry ``user_id`` (segment changes, tombstones, triggers,
    sessions, profile rows) or ``user`` (dead letters, where it may be
    ``None``: such messages get no key).

    >>> from journeyflow.records import Tombstone
    >>> record_key(Tombstone(user_id="u42", ts_ms=0, cause_event_id=None))
    b'u42'
    >>> from journeyflow.events import DeadLetter
    >>> print(record_key(DeadLetter("empty", "empty message", b"", "events/0@7")))
    None
    >>> record_key(42)
    Traceback (most recent call last):
    ...
    TypeError: kafka sink records must have a user_id or user attribute; got int instead
    """
    user = getattr(record, "user_id", _MISSING)
    if user is _MISSING:
        user = getattr(record, "user", _MISSING)
    if user is _MISSING:
        msg = (
            "kafka sink records must have a user_id or user attribute; "
            f"got {type(record).__name__} instead"
        )
        raise TypeError(msg)
    if user is None:
        return None
    if not isinstance(user, str):
        kind = type(record).__name__
        msg = f"user id of a {kind} must be a string; got {type(user).__name__} instead"
        raise TypeError(msg)
    return user.encode("utf-8")


# The broker lost the producer's state (restarted empty, or the producer was
# fenced): a new producer (new producer id) can send the same records again.
_PRODUCER_STATE_ERRORS = (
    kafka_errors.UnknownProducerIdError,
    kafka_errors.OutOfOrderSequenceNumberError,
    kafka_errors.InvalidProducerEpochError,
    kafka_errors.ProducerFencedError,
    kafka_errors.InvalidProducerIdMappingError,
)
# The record itself is refused: sending it again can never succeed.
_RECORD_ERRORS = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidRecordError,
    kafka_errors.CorruptRecordError,
)
# Room a dead letter's record needs besides its JSON value (key, headers,
# record and batch framing) below max_request_size.
DEAD_LETTER_HEADROOM = 2048
# Unacknowledged for this long (while flushing) is an outage worth reporting.
_SLOW_ACK_S = 5.0
# How long one flush waits before the sink checks on the outage again.
_FLUSH_SLICE_S = 1.0
# No acknowledgement at all for this long: the producer is replaced and the
# records re-sent. A broker restarted empty (Tansu, here) never answers an old
# producer's requests, and kafka-python would retry them until its delivery
# timeout, then fail them; a new producer gets through at once.
_STUCK_S = 15.0
# Closing a producer waits at most this long.
_CLOSE_S = 2.0


@dataclass(frozen=True, slots=True)
class _Out:
    """One message to send: where, its key and value, and the record it came from."""

    topic: str
    key: bytes | None
    value: bytes
    record: Any


def _close_producer(producer: KafkaProducer | None, timeout_s: float) -> None:
    """Close a producer within about ``timeout_s``, failing what it still holds."""
    if producer is None:
        return
    try:
        producer.close(timeout=timeout_s)
    except (kafka_errors.KafkaError, OSError) as ex:
        # kafka-python 3.0.12's close() flushes first and raises when that
        # times out, before it force-closes its sender thread: the producer
        # would stay half open (and complain again when collected). Finish
        # its close here (private attributes; guarded).
        log.debug("kafka producer closed with an error", extra={"error": repr(ex)})
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
        producer._closed = True


class _KafkaSinkPartition(StatelessSinkPartition[Any]):
    """One worker's producer for one sink; see :class:`KafkaSink` for the guarantees."""

    def __init__(self, sink: KafkaSink, step_id: str) -> None:
        self._sink = sink
        self._producer: KafkaProducer | None = sink.new_producer()
        self._outage = Outage("kafka", f"sink {step_id} ({sink.topic})", sink.policy, logger=log)

    def write_batch(self, items: list[Any]) -> None:
        topic = self._sink.topic
        todo = [_Out(topic, record_key(item), item.to_json(), item) for item in items]
        while todo:
            todo = self._attempt(todo)
        self._outage.succeeded()

    def _attempt(self, todo: list[_Out]) -> list[_Out]:
        """Send ``todo``, wait for every acknowledgement; return what must be sent
        again, in the original order (after waiting the back-off)."""
        if self._producer is None:
            try:
                self._producer = self._sink.new_producer()
            except ConnectionFailure as ex:
                KAFKA_ERRORS.inc()
                self._outage.failed(ex, topic=self._sink.topic, records=len(todo))
                return todo
        sent: list[tuple[_Out, Any]] = []
        unsent: list[_Out] = []
        error: BaseException | None = None
        for index, out in enumerate(todo):
            try:
                sent.append((out, self._producer.send(out.topic, value=out.value, key=out.key)))
            except _RECORD_ERRORS as ex:
                unsent.extend(self._refused(out, ex))
            except kafka_errors.KafkaTimeoutError as ex:
                # No metadata in time (broker away, topic gone): this and the
                # rest wait; sending the rest now could reorder a user's records.
                unsent.extend(todo[index:])
                error = ex
                break
        stuck = self._flush(sent)
        recreate = stuck is not None
        if stuck is not None:
            error = stuck
            _close_producer(self._producer, 0)  # fails what it still holds: all of it is sent again
        again: list[_Out] = []
        for out, future in sent:
            if future.succeeded():
                continue
            if stuck is not None:
                again.append(out)
                continue
            ex = future.exception
            if isinstance(ex, _RECORD_ERRORS):
                again.extend(self._refused(out, ex))
                continue
            if isinstance(ex, _PRODUCER_STATE_ERRORS):
                recreate = True
            elif not (getattr(ex, "retriable", False) or isinstance(ex, kafka_errors.KafkaConnectionError)):
                KAFKA_ERRORS.inc()
                msg = f"kafka sink cannot write to topic {out.topic!r}: {ex}"
                raise ConnectionFailure(msg) from ex
            error = error or ex
            again.append(out)
        again.extend(unsent)
        if error is None:
            return again  # only refused records, replaced by dead letters: no waiting
        KAFKA_ERRORS.inc()
        if recreate:
            log.warning(
                "kafka producer stuck or its state lost by the broker; re-creating it and re-sending",
                extra={"topic": self._sink.topic, "records": len(again), "error": repr(error)},
            )
            if stuck is None:
                _close_producer(self._producer, 0)
            self._producer = None  # made again before the next attempt
        self._outage.failed(error, topic=self._sink.topic, records=len(again))
        return again

    def _flush(self, sent: list[tuple[_Out, Any]]) -> BaseException | None:
        """Wait until every record is acknowledged or failed; return an error
        instead if nothing moved for ``_STUCK_S``.

        The epoch must not close on output still in a buffer. Flushed in
        slices, so that a broker that does not answer is reported (and the
        give-up deadline checked) while the producer keeps retrying on its own.
        """
        assert self._producer is not None
        started = progress_at = time.monotonic()
        done = 0
        while True:
            now_done = sum(1 for _, future in sent if future.is_done)
            if now_done == len(sent):
                return None
            now = time.monotonic()
            if now_done > done:
                done, progress_at = now_done, now
            elif now - progress_at >= _STUCK_S:
                return kafka_errors.KafkaTimeoutError(f"no acknowledgement for {now - progress_at:.0f} s")
            try:
                self._producer.flush(timeout=_FLUSH_SLICE_S)
            except kafka_errors.KafkaTimeoutError as ex:
                waited = time.monotonic() - started
                if waited >= _SLOW_ACK_S:
                    KAFKA_ERRORS.inc()
                    self._outage.failed(ex, topic=self._sink.topic, unacknowledged_s=round(waited, 1), wait=False)

    def _refused(self, out: _Out, error: BaseException) -> list[_Out]:
        """Return what replaces a record the topic refused for good."""
        sink = self._sink
        UNDELIVERABLE.labels(topic=out.topic).inc()
        KAFKA_ERRORS.inc()
        letter = out.record if isinstance(out.record, DeadLetter) else None
        if letter is None:
            letter = DeadLetter(
                "undeliverable",
                f"{type(out.record).__name__} of {len(out.value)} bytes refused by topic {out.topic!r}: {error}",
                out.value,
                out.topic,
                out.key.decode("utf-8", "replace") if out.key else None,
            )
            bound = sink.max_dead_letter_bytes
        else:
            # A dead letter refused: the broker's own limit is lower than ours.
            bound = len(out.value) // 4
        smaller = letter.shrunk(bound)
        if smaller is None:
            log.error(
                "kafka refused a record even without its raw text; dropped",
                extra={"topic": out.topic, "bytes": len(out.value), "error": repr(error)},
            )
            return []
        log.warning(
            "kafka refused a record for good; sent to the dead letters instead",
            extra={"topic": out.topic, "bytes": len(out.value), "dead_letters": sink.dead_letters_topic,
                   "error": repr(error)},
        )
        return [_Out(sink.dead_letters_topic, out.key, smaller.to_json(), smaller)]

    def close(self) -> None:
        self._outage.close()
        if self._producer is not None:
            # Whatever is still unacknowledged belongs to an epoch that will
            # not close: it is sent again on resume, so there is no waiting.
            _close_producer(self._producer, _CLOSE_S)


class KafkaSink(DynamicSink[Any]):
    """Write records to a topic, keyed by user id (see :func:`record_key`),
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
        linger_ms: int = 5,
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

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaSinkPartition:
        if self.required:
            self.check()
        return _KafkaSinkPartition(self, step_id)

    def new_producer(self) -> KafkaProducer:
        """Return a new producer for this sink (also after the broker lost its state)."""
        delivery_ms = _ms(self.delivery_timeout_s)
        try:
            return KafkaProducer(
                bootstrap_servers=self.brokers,
                client_id=self.client_id,
                linger_ms=self.linger_ms,
                delivery_timeout_ms=delivery_ms,
                # Kafka requires delivery timeout >= linger + request timeout.
                request_timeout_ms=min(30_000, delivery_ms - self.linger_ms),
                max_request_size=self.max_request_size,
                # send() waits this long for a topic's metadata; the sink's own
                # back-off takes over after that (and logs why it waits).
                max_block_ms=_ms(min(self.connect_timeout_s, 10)),
                allow_auto_create_topics=False,
                bootstrap_timeout_ms=_ms(self.connect_timeout_s),
                reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
                **self.options,
                **self.producer,
            )
        except (kafka_errors.KafkaError, OSError) as ex:
            raise _unreachable(self.brokers, self.connect_timeout_s) from ex


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
