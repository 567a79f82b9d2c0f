"""The live tests' topics: a unique set per test (passed to the worker through
``JOURNEYFLOW_KAFKA_*_TOPIC``), producing events keyed like the contract says, and reading
what the worker wrote (``tests/live_worker.py`` runs the worker).

Reads poll until the expected records arrived or a deadline passed. Topics are never
read "up to end_offsets": Tansu's latest offset is off by the last batch
(``shared/notes/kafka-and-redis-here.md``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from flows.kafka import ensure_topics


OUTPUTS = ("segment_changes", "triggers", "dead_letters", "sessions", "holdouts", "conversions")


# --- topics, producing, reading ---------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """The worker's input topic and its output topics."""

    events: str
    segment_changes: str
    triggers: str
    dead_letters: str
    sessions: str
    holdouts: str
    conversions: str

    def outputs(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in OUTPUTS}

    def env(self) -> dict[str, str]:
        names = {"events": self.events, **self.outputs()}
        return {f"JOURNEYFLOW_KAFKA_{name.upper()}_TOPIC": topic for name, topic in names.items()}


def make_topics(
    bootstrap: str, prefix: str | None = None, partitions: int = 2, *, events: str | None = None
) -> Topics:
    """Create a unique set of topics (``events`` reuses an existing input topic)."""
    prefix = prefix or f"live-{uuid.uuid4().hex[:8]}"
    names = {name: f"{prefix}-{name.replace('_', '-')}" for name in OUTPUTS}
    wanted = {topic: 2 for topic in names.values()}
    if events is None:
        events = f"{prefix}-events"
        wanted[events] = partitions
    ensure_topics([bootstrap], wanted, timeout_s=10)
    return Topics(events=events, **names)


def user_key(line: bytes) -> bytes | None:
    """Return the message key a producer gives a line: its user id, else its anonymous id."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    for name in ("user_id", "anonymous_id"):
        user = doc.get(name)
        if isinstance(user, str) and user:
            return user.encode()
    return None


@dataclass
class Sent:
    """Where produced messages landed: ``(partition, offset)`` per message, in order."""

    places: list[tuple[int, int]] = field(default_factory=list)

    def ends(self) -> dict[int, int]:
        """Return the offset after the last message, per partition written."""
        ends: dict[int, int] = {}
        for partition, offset in self.places:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends

    def source(self, index: int, topic: str) -> str:
        partition, offset = self.places[index]
        return f"{topic}/{partition}@{offset}"


def send(
    bootstrap: str,
    topic: str,
    messages: Iterable[dict[str, Any] | bytes],
    *,
    rate: float | None = None,
    keys: Sequence[bytes | None] | None = None,
) -> Sent:
    """Produce events (dicts or raw bytes) keyed by user, as producers must; wait for the acks.

    ``rate`` paces the sending (messages per second). ``keys`` overrides the keys.
    """
    lines = [m if isinstance(m, bytes) else orjson.dumps(m) for m in messages]
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5)
    try:
        started = time.monotonic()
        futures = []
        for i, line in enumerate(lines):
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            key = keys[i] if keys is not None else user_key(line)
            futures.append(producer.send(topic, key=key, value=line))
        producer.flush()
        sent = Sent()
        for future in futures:
            meta = future.get(timeout=10)
            sent.places.append((meta.partition, meta.offset))
        return sent
    finally:
        producer.close()


class TopicReader:
    """Read a topic from the beginning of every partition, keeping what arrived."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 2) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)

    def poll(self, timeout_ms: int = 200) -> list[Any]:
        """Fetch what is there now; return the new records."""
        new: list[Any] = []
        for batch in self._consumer.poll(timeout_ms=timeout_ms).values():
            new.extend(batch)
        self.records.extend(new)
        return new

    def drain(self, quiet_ms: int = 500) -> list[Any]:
        """Read until a poll of ``quiet_ms`` brings nothing; return every record."""
        while self.poll(quiet_ms):
            pass
        return self.records

    def docs(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]

    def pairs(self) -> list[tuple[bytes | None, bytes]]:
        return [(r.key, r.value) for r in self.records]

    def close(self) -> None:
        self._consumer.close()
