"""Print the triggers journeyflow publishes, one readable line each, until Ctrl-C.

The example downstream subscriber of the ``triggers`` topic
(``shared/spec/events.md``). Each line reads::

    2026-11-22T11:05:00Z  cart_abandonment  treatment  u42  {"products":["sku-7"],"cart_value":59.0}

that is: event time, rule, variant, user, payload. A message that is not a
trigger is printed as it came, marked. ``trigger_id`` is deterministic, so a
real subscriber drops repeats after a journeyflow restart by that id.

Without ``--group`` the subscriber reads every partition from the end (or
the beginning with ``--from-beginning``) and commits nothing. With
``--group G`` it joins consumer group G and commits its position, so a
restart continues where it stopped; ``--from-beginning`` then only matters
the first time the group runs.

Defaults come from the settings (``JOURNEYFLOW_KAFKA_BROKERS``,
``JOURNEYFLOW_KAFKA_TRIGGERS_TOPIC``), and so do TLS and SASL (``[kafka]``,
through ``journeyflow/clients.py``, as for the worker). An unreachable
broker, a missing topic or a TLS or login problem ends with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from config.settings import load_settings
from flows.kafka import parse_brokers, topic_partitions
from journeyflow.clients import kafka_options
from journeyflow.errors import JourneyflowError

PROG = "tail_triggers.py"


def format_trigger(value: bytes | None, where: str) -> str:
    """Return the line printed for one message."""
    try:
        doc: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("kind") != "trigger":
        text = (value or b"").decode("utf-8", errors="replace")
        return f"(not a trigger) {where}: {text}"
    payload = orjson.dumps(doc.get("payload")).decode("utf-8")
    fields = (doc.get("ts"), doc.get("rule"), doc.get("variant"), doc.get("user_id"), payload)
    return "  ".join(str(field) for field in fields)


def _parser(settings: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default=settings.kafka.brokers,
                        help="comma-separated host:port list (default: %(default)s)")
    parser.add_argument("--topic", default=settings.kafka.triggers_topic,
                        help="topic to read (default: %(default)s)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start with the oldest trigger still on the topic")
    parser.add_argument("--group", help="consumer group: commit the position and resume from it")
    parser.add_argument("--connect-timeout", type=float, default=settings.kafka.connect_timeout_s,
                        help="seconds to wait for the broker (default: %(default)s)")
    return parser


def _consumer(
    args: argparse.Namespace, brokers: list[str], partitions: list[int], client: dict[str, Any]
) -> KafkaConsumer:
    common = {
        "bootstrap_servers": brokers,
        "bootstrap_timeout_ms": round(args.connect_timeout * 1000),
        "allow_auto_create_topics": False,
        **client,
    }
    if args.group:
        return KafkaConsumer(
            args.topic,
            group_id=args.group,
            enable_auto_commit=True,
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            **common,
        )
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **common)
    assigned = [TopicPartition(args.topic, p) for p in partitions]
    consumer.assign(assigned)
    if args.from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        consumer.seek_to_end(*assigned)
    return consumer


def tail(args: argparse.Namespace, settings: Any) -> int:
    """Print triggers until interrupted, with the ``[kafka]`` client settings; return the exit status."""
    brokers = parse_brokers(args.brokers)
    options = kafka_options(settings.kafka)
    client_id = f"{settings.kafka.client_id}-tail-triggers"
    partitions = topic_partitions(brokers, args.topic, args.connect_timeout, client_id, options)
    consumer = _consumer(args, brokers, partitions, {"client_id": client_id, **options})
    printed = 0
    try:
        while True:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for message in messages:
                    where = f"{tp.topic}/{tp.partition}@{message.offset}"
                    print(format_trigger(message.value, where), flush=True)
                    printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"{PROG}: {printed} messages", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    # kafka-python logs every refused connection; the one-line error says it all.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    # Ctrl-C stops it, even when a shell started it with SIGINT ignored (a
    # background job of a script): Python then installs no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        settings = load_settings()
        args = _parser(settings).parse_args(argv)
        return tail(args, settings)
    except (JourneyflowError, KafkaError) as ex:
        print(f"{PROG}: {ex}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
