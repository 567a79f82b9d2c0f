"""Fetch one Kafka partition in a thread of its own, so the live worker never waits on a fetch.

kafka-python 3 runs its network I/O in a thread per client, and every ``poll()``
hands work to that thread and blocks until it has run (``Fetcher.send_fetches``),
even with ``timeout_ms=0``: measured in the live worker at 2,000 events/s, 18% of
its thread's wall time went to those hand-overs, one or two per poll of each
partition, on a machine whose cores it shares. The worker's ``next_batch``
(:class:`~flows.kafka_partition.KafkaPartition`) now only takes what this reader
has already fetched: the reader's thread is the one that blocks, while the
worker runs its steps, and a fetch is in flight while the previous records are
processed.

The reader holds at most about ``2 * batch_size`` records (plus one poll's): it
stops polling while that many wait, so memory stays bounded when the worker is
behind, and the broker keeps the backlog. Offsets are the worker's business: a
record fetched but not yet taken is fetched again after a restart.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaConsumer, TopicPartition

from journeyflow.metrics import KAFKA_ERRORS

__all__ = ["PartitionReader"]

log = logging.getLogger("journeyflow.kafka")

# How long one poll of the reader waits for a fetch: short enough that a close is
# prompt, long enough that an idle partition costs a few wake-ups a second.
_POLL_MS = 100
# After a failed poll, the reader waits this long before the next (nothing was
# returned, so nothing is lost by waiting).
_ERROR_WAIT_S = 1.0


class PartitionReader:
    """Poll ``consumer`` (assigned to ``tp`` and positioned) in a daemon thread; hand
    the records over with :meth:`take`.

    :arg batch_size: most records one :meth:`take` returns; the reader pauses while
        twice that many wait.
    """

    def __init__(self, consumer: KafkaConsumer, tp: TopicPartition, batch_size: int, label: str) -> None:
        self._consumer = consumer
        self._tp = tp
        self._batch_size = batch_size
        self._label = label
        self._records: deque[Any] = deque()
        self._room = threading.Condition()
        self._stop = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"journeyflow-read-{label}", daemon=True)
        self._thread.start()

    def take(self) -> list[Any]:
        """Return the oldest waiting records (at most ``batch_size``), in offset order; never blocks."""
        records = self._records
        n = min(len(records), self._batch_size)
        if not n:
            if self._failure is not None:
                # The reader stopped on something unexpected: fail the worker rather than go quiet.
                msg = f"kafka reader of {self._label} stopped: {self._failure!r}"
                raise RuntimeError(msg) from self._failure
            return []
        taken = [records.popleft() for _ in range(n)]
        if len(records) < self._batch_size:
            with self._room:
                self._room.notify()
        return taken

    def waiting(self) -> int:
        """Return how many fetched records wait to be taken."""
        return len(self._records)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (within about one poll) before the consumer is closed."""
        with self._room:
            self._stop = True
            self._room.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        limit = 2 * self._batch_size
        while True:
            with self._room:
                while not self._stop and len(self._records) >= limit:
                    self._room.wait()
                if self._stop:
                    return
            try:
                polled = self._consumer.poll(timeout_ms=_POLL_MS, max_records=self._batch_size)
            except kafka_errors.KafkaError as ex:
                # Nothing was returned, so the position did not move: retrying loses nothing.
                KAFKA_ERRORS.inc()
                log.warning("kafka poll failed; retrying", extra={"partition": self._label, "error": repr(ex)})
                with self._room:
                    if not self._stop:
                        self._room.wait(_ERROR_WAIT_S)
                continue
            except Exception as ex:  # noqa: BLE001 - handed to the worker by take()
                if not self._stop:
                    self._failure = ex
                return
            messages = polled.get(self._tp)
            if messages:
                self._records.extend(messages)
