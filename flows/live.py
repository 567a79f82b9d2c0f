"""The live worker: the journeyflow flow between Kafka topics, with Redis and recovery.

``journeyflow run`` calls :func:`run`. It checks everything it depends on
first (brokers, topics, Redis, the recovery directory) so that a problem is
one clear line and a non-zero exit within the connect timeouts, then runs the
flow until SIGTERM or SIGINT, which stop it cleanly.

Messages are keyed by the Kafka message key (the user id, per the contract)
and parsed inside the per-user step, after the exchange between workers:
raw bytes are cheaper to move between processes than parsed events. A
message without a key is routed by the user id in its body.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir

from config.settings import Settings, check_salt, load_settings, mask_url
from flows.journey import Outputs, build_flow
from flows.kafka import KafkaSink, KafkaSource, check_brokers
from flows.redis_sink import StoreSink
from flows.runtime import execute
from journeyflow.errors import ConfigError
from journeyflow.metrics import READY, start_metrics_server
from journeyflow.records import RawRecord
from state.store import RedisStore

__all__ = ["live_flow", "flow", "run", "prepare_recovery", "route_key"]

log = logging.getLogger("journeyflow.live")


def route_key(record: RawRecord) -> str:
    """Return the user a raw message belongs to: its key, else the id in its body.

    A message with neither goes to the key ``""``, where it becomes a dead letter.

    >>> route_key(RawRecord(b"{}", "events/0@1", "u1"))
    'u1'
    >>> route_key(RawRecord(b'{"anonymous_id": "a9"}', "events/0@2"))
    'a9'
    >>> route_key(RawRecord(b"not json", "events/0@3"))
    ''
    """
    if record.key:
        return record.key
    try:
        doc = orjson.loads(record.data)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(doc, dict):
        for name in ("user_id", "anonymous_id"):
            user = doc.get(name)
            if isinstance(user, str) and user:
                return user
    return ""


def live_flow(settings: Settings, *, check: bool = True) -> Dataflow:
    """Return the flow reading ``[kafka] events_topic`` and writing the output topics.

    With ``check``, brokers, topics and Redis are checked first (one clear
    error instead of a stack trace from inside bytewax).
    """
    kafka = settings.kafka
    source = KafkaSource.from_settings(kafka)
    sinks = {
        "sessions": kafka.sessions_topic,
        "dead_letters": kafka.dead_letters_topic,
        "segment_changes": kafka.segment_changes_topic,
        "triggers": kafka.triggers_topic,
        "holdouts": kafka.holdouts_topic,
        "conversions": kafka.conversions_topic,
    }
    outputs: dict[str, Any] = {name: KafkaSink.from_settings(kafka, topic) for name, topic in sinks.items()}
    if check:
        check_brokers(source.brokers, kafka.connect_timeout_s, kafka.client_id, source.options)
        source.check()
        for sink in outputs.values():
            sink.check()
    if settings.redis.url:
        if check:
            RedisStore.from_settings(settings.redis).close()
        redis_settings = settings.redis
        outputs["store"] = StoreSink(lambda: RedisStore.from_settings(redis_settings))

    def read_kafka(flow: Dataflow) -> Any:
        read = op.input("read", flow, source)
        # RawRecord
        keyed = op.key_on("key_by_user", read, route_key)
        # (user, RawRecord): parsed in the per-user step, after the exchange
        return keyed, None

    return build_flow(settings, read_kafka, Outputs(**outputs), live=True)


def flow() -> Dataflow:
    """Return the live flow from the environment's settings.

    For ``python -m bytewax.run flows.live:flow``; ``journeyflow run`` is the
    usual way in.
    """
    return live_flow(load_settings())


def prepare_recovery(settings: Settings) -> RecoveryConfig | None:
    """Create and initialise the recovery directory on first start; return its config."""
    directory = settings.recovery.dir
    if not directory:
        return None
    path = Path(directory)
    if not path.exists() or not any(path.glob("*.sqlite3")):
        try:
            path.mkdir(parents=True, exist_ok=True)
            init_db_dir(path, settings.recovery.partitions)
        except OSError as ex:
            msg = f"recovery.dir {directory!r} cannot be created: {ex}"
            raise ConfigError(msg) from ex
        log.info("initialised recovery directory", extra={"dir": directory, "partitions": settings.recovery.partitions})
    return RecoveryConfig(str(path), timedelta(seconds=settings.recovery.backup_s))


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop the worker the way Ctrl-C does (bytewax handles KeyboardInterrupt)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


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
        start_metrics_server(settings.run.metrics_port)
    _stop_on_sigterm()
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
    READY.set(1)
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
        READY.set(0)
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
