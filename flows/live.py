"""The live worker: the journeyflow flow between Kafka topics, with Redis and recovery.

``journeyflow run`` calls :func:`run`. It checks everything it depends on
first (brokers, topics, Redis, the recovery directory: :mod:`flows.recovery`) so that a problem is
one clear line and a non-zero exit within the connect timeouts, then runs the
flow until SIGTERM or SIGINT, which stop it cleanly.

Messages are parsed where they are read (the message key, when there is one,
must name the event's user or device), then routed like a replay's events:
by anonymous id through the device step, or by user id straight to the
customer step (``operators/identity.py``). Routing needs the parsed event: a
login is keyed by its user id but must reach its device's state, so parsed
events, not raw bytes, cross between workers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import fields
from datetime import timedelta
from typing import Any, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from config.checks import check_salt
from config.fields import mask_url
from config.settings import Settings, load_settings
from flows.journey import Outputs, build_flow, read_rules
from flows.step_configs import event_parser
from flows.kafka import check_brokers, missing_topics
from flows.kafka_sink import KafkaSink, check_dead_letter_room
from flows.kafka_source import KafkaSource
from flows.recovery import FLOW_ID, prepare_recovery
from flows.redis_sink import StoreSink
from flows.runtime import execute
from journeyflow.errors import ConnectionFailure
from journeyflow.events import DeadLetter, Event
from journeyflow.metrics import set_running, start_metrics_server
from journeyflow.outages import RetryPolicy
from journeyflow.step_records import RawRecord
from operators.rule_types import Rules
from state.redis_store import RedisStore

__all__ = [
    "live_flow",
    "flow",
    "run",
    "output_topics",
    "required_topics",
    "check_topics",
    "read_rules",
]


log = logging.getLogger("journeyflow.live")



def _user_of(event: Event | DeadLetter) -> str:
    # Dead letters took the other branch: every item here is an Event, whose user is set.
    return cast(Event, event).user

def output_topics(settings: Settings, rules: Rules) -> dict[str, str]:
    """Return the topic of every output the worker will write, by output name.

    The one place that says which topics the configured rules need: the
    worker checks these (and the events topic) at start-up, and
    ``journeyflow topics create`` creates them. Holdouts only exist when a
    trigger rule has a holdout share; conversions when there is a trigger
    rule (every trigger rule has a goal, purchases by default).
    """
    kafka = settings.kafka
    topics = {
        "sessions": kafka.sessions_topic,
        "dead_letters": kafka.dead_letters_topic,
        "segment_changes": kafka.segment_changes_topic,
        "triggers": kafka.triggers_topic,
    }
    if any(rule.holdout > 0 for rule in rules.triggers):
        topics["holdouts"] = kafka.holdouts_topic
    if rules.triggers:
        topics["conversions"] = kafka.conversions_topic
    return topics


def required_topics(settings: Settings, rules: Rules) -> list[str]:
    """Return every topic the worker reads or writes with these rules (events first)."""
    return list(dict.fromkeys([settings.kafka.events_topic, *output_topics(settings, rules).values()]))


def check_topics(settings: Settings, rules: Rules, options: Any = None) -> None:
    """Raise ``ConnectionFailure`` naming every missing topic at once (``options``: the
    Kafka clients' security options)."""
    kafka = settings.kafka
    missing = missing_topics(
        kafka.brokers, required_topics(settings, rules), kafka.connect_timeout_s, kafka.client_id, options
    )
    if not missing:
        return
    names = ", ".join(repr(name) for name in missing)
    subject = f"topic {names} does" if len(missing) == 1 else f"topics {names} do"
    msg = f"{subject} not exist on {kafka.brokers} (create them with `journeyflow topics create`)"
    raise ConnectionFailure(msg)


def live_flow(settings: Settings, *, check: bool = True, rules: Rules | None = None) -> Dataflow:
    """Return the flow reading ``[kafka] events_topic`` and writing the output topics.

    With ``check``, brokers, topics and Redis are checked first (one clear
    error instead of a stack trace from inside bytewax).
    """
    kafka = settings.kafka
    rules = rules if rules is not None else read_rules(settings)
    check_dead_letter_room(settings.input.max_dead_letter_bytes, kafka.max_request_size)
    policy = RetryPolicy.from_settings(settings.outages)
    source = KafkaSource.from_settings(kafka)
    written = output_topics(settings, rules)
    sinks = {
        "sessions": kafka.sessions_topic,
        "dead_letters": kafka.dead_letters_topic,
        "segment_changes": kafka.segment_changes_topic,
        "triggers": kafka.triggers_topic,
        "holdouts": kafka.holdouts_topic,
        "conversions": kafka.conversions_topic,
    }
    outputs: dict[str, Any] = {
        name: KafkaSink.from_settings(
            kafka,
            topic,
            max_dead_letter_bytes=settings.input.max_dead_letter_bytes,
            policy=policy,
            required=name in written,
        )
        for name, topic in sinks.items()
    }
    if check:
        check_brokers(source.brokers, kafka.connect_timeout_s, kafka.client_id, source.options)
        check_topics(settings, rules, source.options)
        source.check()
    if settings.redis.url:
        if check:
            RedisStore.from_settings(settings.redis).close()
        redis_settings = settings.redis
        outputs["store"] = StoreSink(lambda: RedisStore.from_settings(redis_settings, policy=policy))

    parser = event_parser(settings)

    def parse(record: RawRecord) -> Event | DeadLetter:
        return parser.parse(record.data, record.source, record.key)

    def read_kafka(flow: Dataflow) -> Any:
        read = op.input("read", flow, source)
        # RawRecord
        parsed = op.map("parse", read, parse)
        # Event | DeadLetter
        split = op.branch("split_dead_letters", parsed, lambda item: isinstance(item, DeadLetter))
        keyed = op.key_on("key_by_user", split.falses, _user_of)
        # (user, Event)
        return keyed, split.trues

    return build_flow(settings, read_kafka, Outputs(**outputs), live=True, rules=rules, flow_id=FLOW_ID)


def flow() -> Dataflow:
    """Return the live flow from the environment's settings.

    For ``python -m bytewax.run flows.live:flow``; ``journeyflow run`` is the
    usual way in.
    """
    return live_flow(load_settings())


def run(
    settings: Settings,
    *,
    workers: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run the live worker in the foreground until SIGTERM or SIGINT.

    A signal is a requested stop: this returns normally (``journeyflow run``
    exits 0). The epoch under way is not committed, so a restart with the
    same recovery directory resumes after the last finished epoch.
    """
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    check_salt(settings.privacy, live=True)
    flow = live_flow(settings)
    recovery = prepare_recovery(settings)
    if settings.run.metrics_port:
        start_metrics_server(settings.run.metrics_port, settings.run.metrics_address)
    epoch = settings.recovery.snapshot_s if recovery is not None else settings.run.epoch_s
    log.info(
        "journeyflow worker starting",
        extra={
            "brokers": settings.kafka.brokers,
            "topic": settings.kafka.events_topic,
            "workers": workers,
            "process_id": process_id,
            "recovery": settings.recovery.dir or None,
            "redis": bool(settings.redis.url),
            "pid": os.getpid(),
        },
    )
    set_running(True)
    log.info("journeyflow worker ready", extra=_ready_fields(settings))
    try:
        execute(
            flow,
            workers_per_process=workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(seconds=epoch),
            recovery_config=recovery,
        )
    except KeyboardInterrupt:
        log.info("journeyflow worker stopped by a signal")
        return
    finally:
        set_running(False)
    log.info("journeyflow worker stopped")


def _ready_fields(settings: Settings) -> dict[str, Any]:
    """Return what the "ready" line says: what the worker consumes and where it writes."""
    kafka, redis = settings.kafka, settings.redis
    return {
        "consumes": f"{kafka.events_topic} on {kafka.brokers} ({kafka.security_protocol})",
        "writes": {
            **{
                f.name.removesuffix("_topic"): getattr(kafka, f.name)
                for f in fields(kafka)
                if f.name.endswith("_topic") and f.name != "events_topic"
            },
            "profiles": f"{mask_url(redis.url)} ({redis.key_prefix}profile:<user_id>)" if redis.url else None,
        },
        "metrics_port": settings.run.metrics_port or None,
    }
