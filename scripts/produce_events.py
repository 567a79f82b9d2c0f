"""Replay recorded click events (JSON Lines, plain or .gz) into a Kafka topic.

Each line becomes one message, keyed by the event's ``user_id`` (else its
``anonymous_id``), as producers must key them (``shared/spec/events.md``).
Lines that are not valid JSON are sent too, without a key, so the worker
dead-letters them like any bad input. Files are sent one after the other,
each in its own order.

Pacing: ``--rate N`` sends N events per second; ``--speedup X`` follows the
events' own timestamps X times faster (``--speedup 1`` is real time; lines
without a usable ``ts`` go out at once); neither sends as fast as possible.

Defaults come from the settings (``JOURNEYFLOW_KAFKA_BROKERS``,
``JOURNEYFLOW_KAFKA_EVENTS_TOPIC``...), and so do TLS, SASL, ``acks`` and
compression (``[kafka]``, through ``journeyflow/clients.py``, as for the
worker). An unreachable broker, a missing topic or a TLS or login problem
ends with one line on stderr and exit status 2.

    python scripts/produce_events.py data/events.jsonl.gz --rate 500
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from config.settings import load_settings
from flows.files import read_lines
from flows.kafka import ensure_topics, parse_brokers, topic_partitions
from journeyflow.clients import kafka_options, producer_options
from journeyflow.errors import JourneyflowError
from journeyflow.events import parse_ts

PROG = "produce_events.py"


def key_and_time(line: bytes) -> tuple[bytes | None, int | None]:
    """Return the message key (user id, else anonymous id) and event time of a line."""
    try:
        doc: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    user = doc.get("user_id")
    if not isinstance(user, str) or not user:
        user = doc.get("anonymous_id")
    key = user.encode("utf-8") if isinstance(user, str) and user else None
    try:
        ts_ms: int | None = parse_ts(doc.get("ts"))
    except (TypeError, ValueError):
        ts_ms = None
    return key, ts_ms


def _parser(settings: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON Lines files, plain or .gz")
    parser.add_argument("--topic", default=settings.kafka.events_topic,
                        help="topic to write (default: %(default)s)")
    parser.add_argument("--brokers", default=settings.kafka.brokers,
                        help="comma-separated host:port list (default: %(default)s)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="events per second")
    pace.add_argument("--speedup", type=float,
                      help="follow the events' timestamps this many times faster")
    parser.add_argument("--create-topic", action="store_true", help="create the topic if missing")
    parser.add_argument("--partitions", type=int, default=3,
                        help="partitions of a created topic (default: %(default)s)")
    parser.add_argument("--connect-timeout", type=float, default=settings.kafka.connect_timeout_s,
                        help="seconds to wait for the broker (default: %(default)s)")
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def produce(args: argparse.Namespace, settings: Any) -> int:
    """Send the files with the ``[kafka]`` client settings; return the exit status."""
    for value, name in ((args.rate, "--rate"), (args.speedup, "--speedup")):
        if value is not None and value <= 0:
            return _fail(f"{name} must be > 0; got {value:g} instead")
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        return _fail(f"input file not found: {', '.join(missing)}")
    brokers = parse_brokers(args.brokers)
    options = kafka_options(settings.kafka)
    client_id = f"{settings.kafka.client_id}-produce-events"
    if args.create_topic:
        ensure_topics(brokers, {args.topic: args.partitions}, args.connect_timeout, client_id, options)
    else:
        try:
            topic_partitions(brokers, args.topic, args.connect_timeout, client_id, options)
        except JourneyflowError as ex:
            if "does not exist" in str(ex):
                return _fail(f"{ex}; use --create-topic to create it")
            raise
    producer = KafkaProducer(
        bootstrap_servers=brokers,
        client_id=client_id,
        linger_ms=10,
        batch_size=256 * 1024,
        allow_auto_create_topics=False,
        bootstrap_timeout_ms=round(args.connect_timeout * 1000),
        **options,
        **producer_options(settings.kafka),
    )
    failures: list[BaseException] = []
    sent = 0
    started = time.monotonic()
    first_ts: int | None = None
    try:
        for path in args.files:
            for _, line, _ in read_lines(path):
                key, ts_ms = key_and_time(line)
                due = None
                if args.rate:
                    due = started + sent / args.rate
                elif args.speedup and ts_ms is not None:
                    first_ts = ts_ms if first_ts is None else first_ts
                    due = started + (ts_ms - first_ts) / 1000 / args.speedup
                if due is not None:
                    ahead = due - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                producer.send(args.topic, value=line, key=key).add_errback(failures.append)
                sent += 1
        producer.flush()
    except KeyboardInterrupt:
        producer.flush()
        print(f"{PROG}: interrupted", file=sys.stderr)
    finally:
        producer.close()
    elapsed = time.monotonic() - started
    rate = sent / elapsed if elapsed > 0 else 0.0
    delivered = sent - len(failures)
    print(f"sent {delivered:,} events to {args.topic!r} in {elapsed:.2f} s ({rate:,.0f} events/s)")
    if failures:
        print(f"{PROG}: {len(failures)} events not delivered: {failures[0]}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    # kafka-python logs every refused connection; the one-line error says it all.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = load_settings()
        args = _parser(settings).parse_args(argv)
        return produce(args, settings)
    except (JourneyflowError, KafkaError) as ex:
        return _fail(str(ex))


if __name__ == "__main__":
    sys.exit(main())
