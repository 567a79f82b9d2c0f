"""Deliver one worker's batches for the live worker's sink (:class:`~flows.kafka_sink.KafkaSink`).

A batch is sent, flushed and acknowledged before ``write_batch`` returns; what failed is
sent again in order after a back-off; a producer that is stuck or lost its state on the
broker is re-created; a record refused for good becomes a dead letter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kafka.errors as kafka_errors
from bytewax.outputs import StatelessSinkPartition
from kafka import KafkaProducer

from journeyflow.errors import ConnectionFailure
from journeyflow.io_metrics import sink_timer
from journeyflow.events import DeadLetter
from journeyflow.metrics import KAFKA_ERRORS, UNDELIVERABLE
from journeyflow.outages import Outage

if TYPE_CHECKING:
    from flows.kafka_sink import KafkaSink

__all__ = ["KafkaSinkPartition", "record_key"]

log = logging.getLogger("journeyflow.kafka")

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


class KafkaSinkPartition(StatelessSinkPartition[Any]):
    """One worker's producer for one sink; see :class:`KafkaSink` for the guarantees."""

    def __init__(self, sink: KafkaSink, step_id: str) -> None:
        self._sink = sink
        self._producer: KafkaProducer | None = sink.new_producer()
        self._outage = Outage("kafka", f"sink {step_id} ({sink.topic})", sink.policy, logger=log)
        self._step_id = step_id

    def write_batch(self, items: list[Any]) -> None:
        topic = self._sink.topic
        with sink_timer(self._step_id, len(items)):
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
            failure = future.exception
            if isinstance(failure, _RECORD_ERRORS):
                again.extend(self._refused(out, failure))
                continue
            if isinstance(failure, _PRODUCER_STATE_ERRORS):
                recreate = True
            elif not (getattr(failure, "retriable", False) or isinstance(failure, kafka_errors.KafkaConnectionError)):
                KAFKA_ERRORS.inc()
                msg = f"kafka sink cannot write to topic {out.topic!r}: {failure}"
                raise ConnectionFailure(msg) from failure
            error = error or failure
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
