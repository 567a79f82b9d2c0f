"""Read one Kafka partition for the live worker's source (:class:`~flows.kafka_source.KafkaSource`).

A partition polls without blocking and backs off while idle; it tells a broker outage
(its leader's connection down) from a quiet topic, and keeps the lag gauge up to date.
Its snapshot is the next offset to read.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import kafka.errors as kafka_errors
from bytewax.inputs import StatefulSourcePartition
from kafka import KafkaConsumer, TopicPartition

from journeyflow.io_metrics import INPUT_DELAY_SECONDS, SOURCE_BATCH_RECORDS
from journeyflow.metrics import EVENTS_READ, KAFKA_ERRORS, KAFKA_LAG, service_down, service_up
from journeyflow.step_records import RawRecord

__all__ = ["KafkaPartition"]

log = logging.getLogger("journeyflow.kafka")

# Back-off of a partition whose poll came back empty: 2 ms, doubling to
# 20 ms, so an idle worker does not spin (at most 50 polls a second per
# partition, each without I/O) and a record that arrives meanwhile waits at
# most 20 ms more, mostly far less: under load a poll is empty only while the
# next fetch is in flight, and bytewax polls again after the back-off.
_IDLE_MIN_S = 0.002
_IDLE_MAX_S = 0.02
# While the partition's leader is unreachable, nothing can arrive: poll less.
_OUTAGE_MAX_S = 1.0
# A leader connection down for this long is an outage worth a warning
# (shorter blips are kafka-python reconnecting an idle connection).
_OUTAGE_GRACE_S = 1.0


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


class KafkaPartition(StatefulSourcePartition[RawRecord, int]):
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
        SOURCE_BATCH_RECORDS.observe(len(batch))
        if messages[0].timestamp > 0:
            INPUT_DELAY_SECONDS.observe(max(0.0, time.time() - messages[0].timestamp / 1000))
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
