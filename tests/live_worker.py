"""Run ``journeyflow run`` as a real subprocess against a real Kafka-protocol broker (Tansu)
and a real redis-server (``tests/conftest.py``), and read what it wrote: the helpers of
``tests/flows/test_live.py``, ``test_live_identity.py``, ``test_recovery.py``, ``test_faults.py``
and ``tests/security/test_secrets.py`` (the ``live`` fixture is in ``tests/flows/conftest.py``).

Each test makes its own topics (unique names, passed to the worker through
``JOURNEYFLOW_KAFKA_*_TOPIC``) and its own Redis database, starts the worker
with ``python -m journeyflow.cli run`` and reads what it wrote. Nothing waits
for a fixed time: reads poll until the expected records arrived or a deadline
passed (then the assertion fails, with the worker's stderr). Topics are never
read "up to end_offsets": Tansu's latest offset is off by the last batch
(``shared/notes/kafka-and-redis-here.md``).

How a test knows the worker has handled *everything* it was sent (for the
generated data sets, where the expected outputs are not known in advance):
with a recovery directory, bytewax records in its SQLite files the last epoch
whose outputs are all written (``commits``) and, per epoch, the offsets its
Kafka source will resume from (``snaps`` of step ``journeyflow.read``). Once
the committed offsets reach the end of every partition (known from the
producer's acknowledgements, not from the broker's end offsets), every output
of every message is on its topic and in Redis. :func:`wait_committed` polls
for that.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from flows.kafka import ensure_topics
from journeyflow.events import parse_ts
from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("segment_changes", "triggers", "dead_letters", "sessions", "holdouts", "conversions")
CONTRACT_PROFILE = {
    "recency_days", "frequency_30d", "monetary_30d", "engagement", "purchase_propensity", "churn_risk"
}
# Segments and triggers that depend on the global online models (scores,
# clusters): with several partitions their values depend on the order in
# which the partitions' updates reach the one models step.
MODEL_SEGMENTS = ("at_risk",)
MODEL_SEGMENT_PREFIXES = ("cluster:",)
MODEL_RULES = ("reengagement",)


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


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, worker: Worker | None = None) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
            code = worker.proc.returncode
            pytest.fail(f"worker exited with code {code} while waiting for {what}:\n{worker.stderr()}")
        if time.monotonic() > deadline:
            detail = f"\nworker stderr:\n{worker.stderr()}" if worker is not None else ""
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        time.sleep(0.05)


# --- the worker -------------------------------------------------------------------


def worker_env(
    bootstrap: str,
    redis_url: str,
    topics: Topics,
    *,
    recovery_dir: Path | None = None,
    metrics_port: int | None = None,
    **settings: Any,
) -> dict[str, str]:
    """Return the environment of a worker: the process's, without its own
    ``JOURNEYFLOW_*`` variables, plus the broker, Redis, topics and ``settings``
    (``sessions_gap_s=2`` becomes ``JOURNEYFLOW_SESSIONS_GAP_S=2``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
    env.update(topics.env())
    env["JOURNEYFLOW_KAFKA_BROKERS"] = bootstrap
    env["JOURNEYFLOW_REDIS_URL"] = redis_url
    env["JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S"] = "5"
    # `journeyflow run` refuses the shipped salt (issue 15).
    env["JOURNEYFLOW_PRIVACY_SALT"] = "test-salt-not-the-shipped-one"
    if recovery_dir is not None:
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(recovery_dir)
        env["JOURNEYFLOW_RECOVERY_SNAPSHOT_S"] = "1"
        env["JOURNEYFLOW_RECOVERY_BACKUP_S"] = "0"
    else:
        env["JOURNEYFLOW_RUN_EPOCH_S"] = "1"
    if metrics_port is not None:
        env["JOURNEYFLOW_RUN_METRICS_PORT"] = str(metrics_port)
    for name, value in settings.items():
        env[f"JOURNEYFLOW_{name.upper()}"] = str(value)
    return env


class Worker:
    """``journeyflow run`` in a subprocess; its output goes to files (a pipe
    nobody reads would block it once full)."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker", args: Sequence[str] = ()) -> None:
        self.env = env
        self.args = list(args)
        self.log_dir = log_dir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def _err_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.runs}.stderr"

    def start(self) -> Worker:
        self.runs += 1
        out_path = self.log_dir / f"{self.name}-{self.runs}.stdout"
        with self._err_path.open("wb") as err, out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeyflow.cli", "run", *self.args],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        return self

    def stderr(self) -> str:
        try:
            return self._err_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker still running after {timeout_s:g} s:\n{self.stderr()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> tuple[int, float]:
        """Send ``sig``; return the exit code and the seconds it took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.wait(timeout_s)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, like a crashed machine."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()


# --- recovery store, Redis, metrics ------------------------------------------------


def committed_offsets(recovery_dir: Path) -> dict[int, int]:
    """Return the source offsets of the last committed epoch, per Kafka partition.

    Empty until an epoch is committed. Reads bytewax's recovery files
    (read-only); only partitions whose offset was snapshotted are included.
    """
    commit: int | None = None
    snaps: dict[str, list[tuple[int, bytes | None]]] = {}
    files = sorted(recovery_dir.glob("*.sqlite3"))
    for path in files:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return {}
        try:
            rows = db.execute("SELECT commit_epoch FROM commits").fetchall()
            for (epoch,) in rows:
                commit = epoch if commit is None else min(commit, epoch)
            if not rows:
                return {}
            for key, epoch, blob in db.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = 'journeyflow.read'"
            ):
                snaps.setdefault(key, []).append((epoch, blob))
        except sqlite3.Error:
            return {}  # being written: try again
        finally:
            db.close()
    if commit is None:
        return {}
    offsets: dict[int, int] = {}
    for key, versions in snaps.items():
        done = [v for v in versions if v[0] <= commit]
        if done:
            _, blob = max(done, key=lambda v: v[0])
            if blob is not None:
                # bytewax pickles snapshots; ours is the next offset to read.
                offsets[int(key)] = pickle.loads(blob)
    return offsets


def wait_committed(recovery_dir: Path, ends: dict[int, int], worker: Worker, timeout_s: float = 60) -> None:
    """Wait until the worker has committed an epoch past every message sent (``ends``)."""

    def done() -> bool:
        got = committed_offsets(recovery_dir)
        return all(got.get(p, 0) >= end for p, end in ends.items())

    wait_until(done, timeout_s, f"the worker to commit offsets {ends}", worker)


def redis_db_url(server: RedisServer, db: int) -> str:
    """Return the URL of database ``db`` of ``server``, emptied."""
    url = f"redis://127.0.0.1:{server.port}/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


def redis_dump(url: str) -> dict[str, Any]:
    """Return every key of the database (but the store's markers): hashes as dicts, sets as sets."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        dump: dict[str, Any] = {}
        for key in client.scan_iter(count=1000):
            if key.startswith("jf:marker"):
                continue  # the store's loss-detection markers, not data
            kind = client.type(key)
            if kind == "hash":
                dump[key] = client.hgetall(key)
            elif kind == "set":
                dump[key] = client.smembers(key)
            elif kind == "string":
                dump[key] = client.get(key)
            else:
                dump[key] = (kind, None)
        return dump
    finally:
        client.close()


def check_store_in_step(dump: dict[str, Any]) -> None:
    """Assert that each profile's ``segments`` matches the segment sets, both ways,
    and that ``updated_at`` never lags behind ``last_seen``."""
    # The store's loss-detection markers (jf:marker...) are not data.
    dump = {k: v for k, v in dump.items() if not k.startswith("jf:marker")}
    profiles = {k.removeprefix("jf:profile:"): v for k, v in dump.items() if k.startswith("jf:profile:")}
    sets = {k.removeprefix("jf:segment:"): v for k, v in dump.items() if k.startswith("jf:segment:")}
    assert set(dump) == {f"jf:profile:{u}" for u in profiles} | {f"jf:segment:{s}" for s in sets}
    for user, fields in profiles.items():
        segments = set(orjson.loads(fields.get("segments", "[]")))
        member_of = {name for name, members in sets.items() if user in members}
        assert segments == member_of, user
        assert "updated_at" in fields, user
        if "last_seen" in fields:
            assert parse_ts(fields["updated_at"]) >= parse_ts(fields["last_seen"]), (user, fields)
    for name, members in sets.items():
        assert members <= set(profiles), name


def metrics(port: int) -> dict[str, float]:
    """Return the Prometheus text of ``http://127.0.0.1:port/metrics`` as {series: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def try_metrics(port: int) -> dict[str, float] | None:
    try:
        return metrics(port)
    except OSError:
        return None


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
