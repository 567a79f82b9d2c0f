"""End to end with TLS everywhere and secrets set: the worker works, and no secret leaks.

The worker runs against Kafka over TLS (stunnel4 in front of Tansu) and a
TLS-only Redis with an ACL user whose password comes from a file, with a
salt set, logging at debug. Events go in through ``scripts/produce_events.py``
(over TLS too). Then every byte the run produced is searched for the secrets:
the worker's stdout and stderr, the script's output, the metrics page, every
record on every output topic, every Redis key and value, and a replay's
output folder (``summary.json`` included) and its stderr, and
``journeyflow settings``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from config.settings import load_settings
from flows.kafka import ensure_topics
from journeyflow.clients import kafka_options
from tests.conftest import free_port
from tests.live_worker import Worker, wait_until
from tests.helpers import at, event, write_events
from tests.security.conftest import REDIS_PASSWORD, REDIS_USER, TlsKafka, TlsRedis

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SALT = "salt-9d41e0-never-logged"
EMAIL = "jane.doe@example.com"


def _events() -> list[dict[str, object]]:
    views = [event("product_view", "u-tls", at(i), product_id="sku-1", category="shoes") for i in range(5)]
    views[0]["traits"] = {"email": EMAIL}
    buys = [event("purchase", "u-loyal", at(days=i), order_id=f"o{i}", revenue=20.0) for i in range(6)]
    return [*views, *buys]


def _env(tls_kafka: TlsKafka, tls_redis: TlsRedis, tmp_path: Path, topics: dict[str, str]) -> dict[str, str]:
    password_file = tmp_path / "redis-password"
    password_file.write_text(REDIS_PASSWORD + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
    env.update(tls_kafka.env())
    env.update({f"JOURNEYFLOW_KAFKA_{name.upper()}_TOPIC": topic for name, topic in topics.items()})
    env.update({
        "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "10",
        "JOURNEYFLOW_REDIS_URL": tls_redis.url,
        "JOURNEYFLOW_REDIS_USERNAME": REDIS_USER,
        "JOURNEYFLOW_REDIS_PASSWORD_FILE": str(password_file),
        "JOURNEYFLOW_REDIS_SSL_CA_FILE": str(tls_redis.files.ca),
        "JOURNEYFLOW_REDIS_SSL_CERT_FILE": str(tls_redis.files.client_cert),
        "JOURNEYFLOW_REDIS_SSL_KEY_FILE": str(tls_redis.files.client_key),
        "JOURNEYFLOW_PRIVACY_SALT": SALT,
        "JOURNEYFLOW_LOGGING_LEVEL": "debug",
        "JOURNEYFLOW_RUN_EPOCH_S": "1",
        "JOURNEYFLOW_SESSIONS_GAP_S": "2",
    })
    return env


def _read_topic(tls_kafka: TlsKafka, options: dict[str, object], topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=[tls_kafka.bootstrap], enable_auto_commit=False, **options)
    parts = [TopicPartition(topic, p) for p in range(2)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got: list[bytes] = []
    while batch := consumer.poll(timeout_ms=700):
        for records in batch.values():
            got.extend((r.key or b"") + b" " + (r.value or b"") for r in records)
    consumer.close()
    return got


def test_a_tls_run_with_secrets_set_works_and_leaks_none(
    tls_kafka: TlsKafka, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    prefix = f"sec-{uuid.uuid4().hex[:6]}"
    names = ("events", "segment_changes", "triggers", "dead_letters", "sessions", "holdouts", "conversions")
    topics = {name: f"{prefix}-{name}" for name in names}
    env = _env(tls_kafka, tls_redis, tmp_path, topics)
    options = kafka_options(load_settings(env=env).kafka)
    ensure_topics([tls_kafka.bootstrap], {t: 2 for t in topics.values()}, 10, options=options)
    redis = tls_redis.client()
    redis.flushdb()
    metrics_port = free_port()
    env["JOURNEYFLOW_RUN_METRICS_PORT"] = str(metrics_port)
    outputs: list[bytes] = []

    with Worker(env, tmp_path) as worker:
        events_file = write_events(tmp_path / "events.jsonl", _events())
        produced = subprocess.run(
            [sys.executable, "scripts/produce_events.py", str(events_file)], cwd=REPO, env=env,
            capture_output=True, timeout=120,
        )
        assert produced.returncode == 0, produced.stderr
        outputs += [produced.stdout, produced.stderr]
        wait_until(lambda: redis.hget("jf:profile:u-tls", "segments") is not None
                   and redis.sismember("jf:segment:loyal", "u-loyal"), 60, "profiles in the TLS Redis", worker)
        wait_until(lambda: _read_topic(tls_kafka, options, topics["triggers"]), 60, "triggers over TLS", worker)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
            outputs.append(page.read())
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr()
    stderr = worker.stderr()
    assert '"msg":"journeyflow worker ready"' in stderr and "(SSL)" in stderr
    outputs.append(stderr.encode())
    outputs += [p.read_bytes() for p in tmp_path.glob("worker-*.std*")]
    for name, topic in topics.items():
        if name != "events":  # the input holds the e-mail in clear, as the producer sent it
            outputs += _read_topic(tls_kafka, options, topic)
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        value = redis.hgetall(key) if kind == "hash" else redis.smembers(key) if kind == "set" else redis.get(key)
        outputs.append(f"{key} {value}".encode())
    redis.close()

    # A replay with the same secrets: its folder and its stderr, and the settings print-out.
    replay = subprocess.run(
        [sys.executable, "-m", "journeyflow.cli", "-vv", "replay", str(events_file), "--out", str(tmp_path / "out"),
         "--redis", tls_redis.url, "-q"], cwd=REPO, env=env, capture_output=True, timeout=300,
    )
    assert replay.returncode == 0, replay.stderr
    shown = subprocess.run([sys.executable, "-m", "journeyflow.cli", "settings"], cwd=REPO, env=env,
                           capture_output=True, timeout=60)
    assert b'salt = "***"' in shown.stdout
    outputs += [replay.stdout, replay.stderr, shown.stdout, shown.stderr]
    outputs += [p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()]
    assert orjson.loads((tmp_path / "out" / "summary.json").read_bytes())["read"] == len(_events())

    blob = b"\n".join(outputs)
    assert len(blob) > 10_000  # it did read the outputs
    for secret in (REDIS_PASSWORD, SALT, EMAIL):
        assert secret.encode() not in blob, f"{secret!r} leaked"
