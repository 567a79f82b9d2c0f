"""Kafka brokers and topics for the live worker, on kafka-python: parse the broker list,
check that brokers answer, list, check and create topics.

The live worker's :class:`~flows.kafka_source.KafkaSource` reads one topic with one bytewax
partition per Kafka partition (:mod:`flows.kafka_partition`); its
:class:`~flows.kafka_sink.KafkaSink` writes records keyed by user id (:mod:`flows.kafka_delivery`).
Neither uses consumer groups: bytewax owns the partition assignment and keeps the read
offsets in its recovery store, so a restart resumes exactly after the last
finished epoch, and outputs are at-least-once (the sink flushes before an
epoch can close; the source re-reads what the unfinished epoch had read).

Start-up is bounded: an unreachable broker or a missing topic raises
:class:`~journeyflow.errors.ConnectionFailure` within ``connect_timeout_s``
(bytewax's stock connector waits forever, ``shared/notes/bytewax-0.21.md``
trap 4). Once running, a broker that goes away is waited for, with a warning
on the ``journeyflow.kafka`` logger: the source backs off and resumes where
it was; the sink's producer retries until its delivery timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient

from journeyflow.connection_failures import check_kafka_tls, explain_kafka_failure
from journeyflow.errors import ConfigError, ConnectionFailure

__all__ = [
    "RECONNECT_BACKOFF_MAX_MS",
    "check_brokers",
    "ensure_topics",
    "missing_topics",
    "parse_brokers",
    "to_ms",
    "topic_partitions",
    "unreachable",
]

log = logging.getLogger("journeyflow.kafka")

# kafka-python's default is 30 s: after an outage the worker would wait up to
# that long to reconnect. One connection attempt per client every 2 s is cheap.
RECONNECT_BACKOFF_MAX_MS = 2000


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


def to_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _hosts(brokers: Sequence[str]) -> str:
    return ",".join(brokers)


def unreachable(brokers: Sequence[str], timeout_s: float) -> ConnectionFailure:
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
            bootstrap_timeout_ms=to_ms(timeout_s),
            request_timeout_ms=to_ms(timeout_s),
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
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
        raise unreachable(brokers, timeout_s) from ex
    finally:
        admin.close()
    info = next((t for t in described if t.get("name") == topic), None)
    if info is None or (error := kafka_errors.for_code(info["error_code"])) is kafka_errors.UnknownTopicOrPartitionError:
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
        raise unreachable(brokers, timeout_s) from ex
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
            timeout_ms=to_ms(timeout_s),
            raise_errors=False,
        )
        for entry in result["topics"]:
            error = kafka_errors.for_code(entry["error_code"])
            # Someone else creating it at the same time is as good as us doing it.
            if error not in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                name = entry["name"]
                msg = f"cannot create topic {name!r} on {_hosts(brokers)}: {error.__name__}"
                raise ConnectionFailure(msg)
        admin.wait_for_topics(list(missing), timeout_ms=to_ms(timeout_s))
    except (kafka_errors.KafkaError, OSError) as ex:
        raise unreachable(brokers, timeout_s) from ex
    finally:
        admin.close()
    log.info("created kafka topics", extra={"topics": missing})
    return list(missing)
