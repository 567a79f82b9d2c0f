"""The live benchmark's stack (``bench_live.py``): a Tansu broker and redis-server on free
ports, the topics, the worker as a subprocess, and the clients that watch it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "scripts"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from config.settings import load_settings  # noqa: E402
from flows.kafka import ensure_topics  # noqa: E402
from journeyflow.clients import kafka_options  # noqa: E402
from tests.conftest import KafkaBroker, RedisServer, free_port  # noqa: E402

OUTPUTS = ("segment_changes", "triggers", "dead_letters", "sessions", "holdouts", "conversions")
SENTINEL = "jf-bench-sentinel"


class BenchError(Exception):
    """The benchmark could not run to the end (a server or the worker failed)."""


def start_servers(workdir: Path) -> tuple[KafkaBroker, RedisServer]:
    """Start a Tansu broker and a redis-server on free ports (the test fixtures' classes)."""
    broker = KafkaBroker(free_port(), workdir / "tansu.log")
    server = RedisServer(free_port(), workdir / "redis.log")
    try:
        broker.start()
        server.start()
    except BaseException as ex:  # pytest.fail raises an exception outside pytest, too
        broker.stop()
        server.stop()
        raise BenchError(f"cannot start the broker or redis-server: {ex}") from ex
    return broker, server


def client_options(config: str | None) -> dict[str, Any]:
    """Return the security options of this script's own Kafka clients: those of the
    worker it starts (the same settings file, through journeyflow/clients.py)."""
    return kafka_options(load_settings(config, env={}).kafka)


def make_topics(bootstrap: str, prefix: str, partitions: int, options: dict[str, Any]) -> dict[str, str]:
    topics = {"events": f"{prefix}-events", **{name: f"{prefix}-{name.replace('_', '-')}" for name in OUTPUTS}}
    wanted = {t: (partitions if n == "events" else 2) for n, t in topics.items()}
    ensure_topics([bootstrap], wanted, 10, options=options)
    return topics


def worker_env(
    bootstrap: str, redis_url: str, topics: dict[str, str], recovery: Path | None, metrics_port: int,
    config: str | None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
    env.update({f"JOURNEYFLOW_KAFKA_{name.upper()}_TOPIC": topic for name, topic in topics.items()})
    env["JOURNEYFLOW_KAFKA_BROKERS"] = bootstrap
    env["JOURNEYFLOW_REDIS_URL"] = redis_url
    env["JOURNEYFLOW_RUN_METRICS_PORT"] = str(metrics_port)
    # `journeyflow run` refuses the shipped salt; a benchmark's is as good as any.
    env["JOURNEYFLOW_PRIVACY_SALT"] = f"bench-{uuid.uuid4().hex}"
    if recovery is not None:
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(recovery)
    if config:
        env["JOURNEYFLOW_CONFIG"] = str(Path(config).resolve())
    return env


class Worker:
    """``journeyflow run`` as a subprocess, stderr to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeyflow.cli", "run"], cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=err,
            )
        self.started = time.time()

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"the worker exited with code {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def user_key(line: bytes) -> bytes | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict):
        for name in ("user_id", "anonymous_id"):
            user = doc.get(name)
            if isinstance(user, str) and user:
                return user.encode()
    return None


def consumer(bootstrap: str, topic: str, options: dict[str, Any]) -> KafkaConsumer:
    """A consumer of every partition of an output topic (two), from the beginning."""
    c = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False, fetch_max_wait_ms=20, **options)
    parts = [TopicPartition(topic, p) for p in range(2)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    return c


def wait_for(check: Any, timeout_s: float, what: str, worker: Worker) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        worker.check()
        time.sleep(0.02)
    raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")
