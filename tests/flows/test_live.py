"""``journeyflow run`` end to end: the worker as a real subprocess, against a real
Kafka-protocol broker (Tansu) and a real redis-server (``tests/conftest.py``).

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

The helpers here are shared with ``test_recovery.py``.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from flows.kafka import ensure_topics
from journeyflow.events import parse_ts
from operators.triggers import trigger_id
from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.helpers import at, event

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

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


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture
def live(
    kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Callable[..., tuple[Topics, Worker]]]:
    """Return ``make(partitions=2, db=1, **settings) -> (topics, worker)``: fresh topics,
    an emptied Redis database and a worker (not started) wired to them."""
    workers: list[Worker] = []

    def make(
        partitions: int = 2,
        db: int = 1,
        *,
        recovery: bool = False,
        metrics_port: int | None = None,
        **settings: Any,
    ) -> tuple[Topics, Worker]:
        topics = make_topics(kafka_broker.bootstrap, partitions=partitions)
        env = worker_env(
            kafka_broker.bootstrap,
            redis_db_url(redis_server, db),
            topics,
            recovery_dir=tmp_path / "recovery" if recovery else None,
            metrics_port=metrics_port,
            **settings,
        )
        worker = Worker(env, tmp_path, f"worker{len(workers)}")
        workers.append(worker)
        return topics, worker

    yield make
    for worker in workers:
        worker.kill()


# --- 1. the happy path ----------------------------------------------------------------


def _happy_events() -> tuple[list[dict[str, Any] | bytes], dict[str, Any]]:
    """Return the events of the happy path and the facts to check about them."""
    views = [event("product_view", "u-view", at(i), product_id="sku-9", category="shoes") for i in range(4)]
    purchases = [
        event("purchase", "u-buy", at(days=i), order_id=f"o-{i}", revenue=10.0 + i) for i in range(6)
    ]
    gone = [
        event("page_view", "u-gone", at(0), url="/"),
        event("purchase", "u-gone", at(1), order_id="o-gone", revenue=5.0),
        event("forget", "u-gone", at(2)),
    ]
    malformed = b'{"event_id": "e-broken", "type": "page_view", "user_id": "u-bad", '
    unknown = event("teleport", "u-odd", at(0))
    events: list[dict[str, Any] | bytes] = [*views, *purchases, malformed, unknown, *gone]
    facts = {"views": views, "purchases": purchases, "gone": gone, "malformed": malformed, "unknown": unknown}
    return events, facts


@pytest.mark.slow
def test_happy_path_outputs_follow_the_contract(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    topics, worker = live(partitions=2)
    events, facts = _happy_events()
    sent = send(kafka_broker.bootstrap, topics.events, events)
    readers = {name: TopicReader(kafka_broker.bootstrap, topic) for name, topic in topics.outputs().items()}
    try:
        with worker:
            changes, triggers, dead = readers["segment_changes"], readers["triggers"], readers["dead_letters"]

            def arrived() -> bool:
                for reader in readers.values():
                    reader.poll(100)
                docs = changes.docs()
                return (
                    {t["rule"] for t in triggers.docs()} >= {"product_interest", "vip_welcome"}
                    and len(dead.records) >= 2
                    and any(d["kind"] == "tombstone" for d in docs)
                    and any("highly_engaged" in d.get("entered", ()) for d in docs)
                    and any("loyal" in d.get("entered", ()) for d in docs)
                )

            wait_until(arrived, 60, "the expected triggers, segment changes and dead letters", worker)
            url = worker.env["JOURNEYFLOW_REDIS_URL"]
            # The Redis rows of u-gone's erasure travel with its tombstone; wait until applied.
            wait_until(
                lambda: "jf:profile:u-buy" in redis_dump(url) and "jf:profile:u-gone" not in redis_dump(url),
                30,
                "Redis to hold u-buy and not u-gone",
                worker,
            )
            dump = redis_dump(url)
            code, _ = worker.stop(signal.SIGTERM)
            assert code == 0, worker.stderr()
            for reader in readers.values():
                reader.drain(300)
    finally:
        for reader in readers.values():
            reader.close()

    # Every output record is keyed by its user id and is a JSON object of its kind.
    for name, reader in readers.items():
        for record in reader.records:
            doc = orjson.loads(record.value)
            if name != "dead_letters" or doc.get("user_id") is not None:
                assert record.key == doc["user_id"].encode(), (name, record)

    # 1a. Four views of one product within a day: product_interest on the 4th, highly_engaged entered.
    views = facts["views"]
    [interest] = [t for t in readers["triggers"].docs() if t["rule"] == "product_interest"]
    assert set(interest) == {"kind", "trigger_id", "rule", "user_id", "ts", "cause_event_id", "variant", "payload"}
    assert interest["kind"] == "trigger" and interest["user_id"] == "u-view"
    assert interest["cause_event_id"] == views[3]["event_id"]
    assert parse_ts(interest["ts"]) == parse_ts(views[3]["ts"])
    assert interest["variant"] == "treatment"
    assert interest["payload"] == {"product_id": "sku-9", "category": "shoes", "views_24h": 4}
    # Deterministic: the same input gives the same id, so consumers can drop repeats.
    assert interest["trigger_id"] == trigger_id("product_interest", "u-view", views[3]["event_id"])
    engaged = [c for c in readers["segment_changes"].docs() if "highly_engaged" in c.get("entered", ())]
    assert len(engaged) == 1
    [entry] = engaged
    assert {"kind", "user_id", "ts", "entered", "exited", "segments", "cause_event_id", "profile"} <= set(entry)
    assert entry["kind"] == "segment_change" and entry["user_id"] == "u-view"
    assert entry["cause_event_id"] == views[3]["event_id"]
    assert parse_ts(entry["ts"]) == parse_ts(views[3]["ts"])
    assert "highly_engaged" in entry["segments"]
    assert set(entry["profile"]) >= CONTRACT_PROFILE

    # 1b. Six purchases within 30 days: loyal entered, vip_welcome fired, on the 6th.
    purchases = facts["purchases"]
    [vip] = [t for t in readers["triggers"].docs() if t["rule"] == "vip_welcome"]
    assert vip["user_id"] == "u-buy" and vip["cause_event_id"] == purchases[5]["event_id"]
    assert vip["payload"] == {"segment": "loyal", "purchases_30d": 6}
    assert vip["trigger_id"] == trigger_id("vip_welcome", "u-buy", f"loyal|{purchases[5]['event_id']}")
    [loyal] = [c for c in readers["segment_changes"].docs() if "loyal" in c.get("entered", ())]
    assert loyal["user_id"] == "u-buy" and loyal["cause_event_id"] == purchases[5]["event_id"]
    assert parse_ts(loyal["ts"]) == parse_ts(purchases[5]["ts"])
    assert loyal["profile"]["frequency_30d"] == 6
    assert loyal["profile"]["monetary_30d"] == pytest.approx(sum(10.0 + i for i in range(6)))
    assert loyal["profile"]["recency_days"] == 0.0

    # 1c. Dead letters: the reason, the original text, and where it came from.
    dead = {d["code"]: d for d in readers["dead_letters"].docs()}
    assert set(dead) == {"invalid_json", "unknown_type"}, dead
    broken = dead["invalid_json"]
    assert broken["kind"] == "dead_letter"
    assert broken["reason"].startswith("invalid JSON")
    assert broken["raw"] == facts["malformed"].decode()
    assert broken["source"] == sent.source(events.index(facts["malformed"]), topics.events)
    odd = dead["unknown_type"]
    assert odd["reason"] == "unknown type: teleport"
    assert orjson.loads(odd["raw"]) == facts["unknown"]
    assert odd["source"] == sent.source(events.index(facts["unknown"]), topics.events)

    # 1d. Forget: a tombstone keyed by the user, nothing of them left in Redis.
    tombstones = [r for r in readers["segment_changes"].records if orjson.loads(r.value)["kind"] == "tombstone"]
    assert [(r.key, orjson.loads(r.value)["user_id"]) for r in tombstones] == [(b"u-gone", "u-gone")]
    assert orjson.loads(tombstones[0].value)["cause_event_id"] == facts["gone"][2]["event_id"]
    assert not any(k.endswith(":u-gone") for k in dump)
    assert not any("u-gone" in members for k, members in dump.items() if k.startswith("jf:segment:"))

    # Redis: profiles with RFM fields and updated_at; segment sets in step with them.
    buyer = dump["jf:profile:u-buy"]
    assert "loyal" in orjson.loads(buyer["segments"])
    assert buyer["frequency_30d"] == "6"
    assert float(buyer["monetary_30d"]) == pytest.approx(sum(10.0 + i for i in range(6)))
    assert float(buyer["recency_days"]) == 0.0
    assert parse_ts(buyer["updated_at"]) == parse_ts(purchases[5]["ts"])
    assert "u-buy" in dump["jf:segment:loyal"]
    assert "u-view" in dump["jf:segment:highly_engaged"]
    assert "highly_engaged" in orjson.loads(dump["jf:profile:u-view"]["segments"])
    check_store_in_step(dump)
    # None of these users fires a rule with a holdout group (cart_abandonment, reengagement).
    assert readers["holdouts"].records == []


@pytest.mark.slow
def test_timers_close_sessions_by_the_wall_clock(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # A 2-second session gap and no allowed lateness: the cart left behind is
    # abandoned 2 s (wall clock) after the user's last event, whatever the event times.
    topics, worker = live(partitions=2, sessions_gap_s=2, lateness_allowed_s=0)
    start = parse_ts(at(0))
    cart = [
        event("product_view", "u-cart", start, product_id="sku-5"),
        event("add_to_cart", "u-cart", start + 1000, product_id="sku-5", price=20.0),
    ]
    sessions = TopicReader(kafka_broker.bootstrap, topics.sessions)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            send(kafka_broker.bootstrap, topics.events, cart)
            sent_at = time.monotonic()
            wait_until(lambda: triggers.poll(100) or triggers.records, 30, "a cart_abandonment trigger", worker)
            waited = time.monotonic() - sent_at
            wait_until(lambda: sessions.poll(100) or sessions.records, 10, "the closed session", worker)
    finally:
        sessions.close()
        triggers.close()
    [abandoned] = triggers.docs()
    assert abandoned["rule"] == "cart_abandonment" and abandoned["user_id"] == "u-cart"
    assert abandoned["payload"] == {"products": ["sku-5"], "cart_value": 20.0}
    # Closed at the event time of the last event plus the gap.
    assert parse_ts(abandoned["ts"]) == start + 1000 + 2000
    [session] = sessions.docs()
    assert session["user_id"] == "u-cart"
    assert waited >= 1.5  # not before the gap had passed on the wall clock


@pytest.mark.slow
def test_scores_reach_the_redis_profile_as_soon_as_they_exist(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # Scores from the first example on (no warm-up), so a purchase is scored at once.
    topics, worker = live(partitions=2, models_min_examples=0)
    events = [event("purchase", f"u-s{n}", at(n), order_id=f"o-s{n}", revenue=20.0) for n in range(3)]
    with worker:
        send(kafka_broker.bootstrap, topics.events, events)
        url = worker.env["JOURNEYFLOW_REDIS_URL"]

        def scored() -> bool:
            dump = redis_dump(url)
            rows = [dump.get(f"jf:profile:u-s{n}", {}) for n in range(3)]
            return all("churn_risk" in row and "purchase_propensity" in row for row in rows)

        wait_until(scored, 60, "churn_risk and purchase_propensity in every profile hash", worker)
        dump = redis_dump(url)
    for n in range(3):
        row = dump[f"jf:profile:u-s{n}"]
        assert 0.0 <= float(row["churn_risk"]) <= 1.0 and 0.0 <= float(row["purchase_propensity"]) <= 1.0
        assert row["frequency_30d"] == "1"  # the profile's own fields are there too
    check_store_in_step(dump)


# --- 2. start-up faults ---------------------------------------------------------------


def _fault_cases() -> list[Any]:
    return [
        pytest.param("unreachable_broker", id="unreachable-broker"),
        pytest.param("missing_events_topic", id="missing-events-topic"),
        pytest.param("missing_output_topic", id="missing-output-topic"),
        pytest.param("unreachable_redis", id="unreachable-redis"),
        pytest.param("bad_setting", id="bad-setting"),
        pytest.param("bad_recovery_dir", id="bad-recovery-dir"),
    ]


@pytest.mark.parametrize("fault", _fault_cases())
def test_startup_faults_exit_non_zero_with_one_clear_line(
    fault: str, kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap)
    env = worker_env(kafka_broker.bootstrap, redis_db_url(redis_server, 1), topics)
    dead = f"127.0.0.1:{free_port()}"
    expected = {
        # The default connect timeout (10 s), not the tests' shorter one.
        "unreachable_broker": f"kafka broker(s) {dead} unreachable after 10 s",
        "missing_events_topic": f"topic 'no-such-events' does not exist on {kafka_broker.bootstrap}",
        "missing_output_topic": f"topic 'no-such-triggers' does not exist on {kafka_broker.bootstrap}",
        "unreachable_redis": f"redis redis://{dead}/0 unreachable after",
        "bad_setting": "sessions.gap_s must be > 0; got -5 instead",
        "bad_recovery_dir": "recovery.dir",
    }[fault]
    if fault == "unreachable_broker":
        env["JOURNEYFLOW_KAFKA_BROKERS"] = dead
        del env["JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S"]
    elif fault == "missing_events_topic":
        env["JOURNEYFLOW_KAFKA_EVENTS_TOPIC"] = "no-such-events"
    elif fault == "missing_output_topic":
        env["JOURNEYFLOW_KAFKA_TRIGGERS_TOPIC"] = "no-such-triggers"
    elif fault == "unreachable_redis":
        env["JOURNEYFLOW_REDIS_URL"] = f"redis://{dead}/0"
    elif fault == "bad_setting":
        env["JOURNEYFLOW_SESSIONS_GAP_S"] = "-5"
    elif fault == "bad_recovery_dir":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(blocker / "recovery")
    worker = Worker(env, tmp_path)
    started = time.monotonic()
    worker.start()
    code = worker.wait(60)
    elapsed = time.monotonic() - started
    stderr = worker.stderr()
    assert code == 2, stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("journeyflow: error: "), stderr
    assert expected in lines[0], stderr
    if fault == "unreachable_broker":
        assert elapsed >= 10  # it did wait for the broker
    # Nothing was started: no topic was created by asking about the missing one.
    if fault.startswith("missing"):
        consumer = KafkaConsumer(bootstrap_servers=[kafka_broker.bootstrap])
        try:
            assert not {"no-such-events", "no-such-triggers"} & consumer.topics()
        finally:
            consumer.close()


# --- 3. signals -----------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_and_sigint_stop_cleanly_and_a_restart_continues(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    port = free_port()
    topics, worker = live(partitions=2, recovery=True, metrics_port=port)
    recovery = tmp_path / "recovery"
    first = [event("product_view", "u-sig", at(i), product_id="sku-3") for i in range(2)]
    second = [event("product_view", "u-sig", at(2 + i), product_id="sku-3") for i in range(2)]
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        worker.start()
        sent = send(kafka_broker.bootstrap, topics.events, first)
        wait_committed(recovery, sent.ends(), worker)
        code, took = worker.stop(signal.SIGTERM)
        stderr = worker.stderr()
        assert code == 0, stderr
        assert took < 5, f"SIGTERM took {took:.1f} s"
        no_traceback(stderr)
        assert "journeyflow worker stopped by a signal" in stderr
        assert try_metrics(port) is None  # the process is gone, metrics with it
        assert triggers.drain(300) == []  # two views: nothing to trigger yet

        # The restart resumes from the recovery directory: the two views it
        # remembers and the two new ones make four, and product_interest fires.
        worker.start()
        sent2 = send(kafka_broker.bootstrap, topics.events, second)
        wait_until(lambda: triggers.poll(100) or triggers.records, 60, "the trigger after the restart", worker)
        [interest] = triggers.docs()
        assert interest["rule"] == "product_interest"
        assert interest["cause_event_id"] == second[1]["event_id"]
        assert interest["payload"]["views_24h"] == 4
        # Only the new messages were read again: the first ones were committed.
        wait_committed(recovery, sent2.ends(), worker)
        read = wait_until(lambda: try_metrics(port), 10, "metrics", worker)
        assert read[f'journeyflow_events_read_total{{source="kafka:{topics.events}"}}'] == len(second)

        code, took = worker.stop(signal.SIGINT)
        assert code == 0, worker.stderr()
        assert took < 5, f"SIGINT took {took:.1f} s"
        no_traceback(worker.stderr())
    finally:
        triggers.close()
        worker.kill()


# --- 6. metrics and readiness ---------------------------------------------------------


@pytest.mark.slow
def test_metrics_report_readiness_reads_and_dead_letters(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    port = free_port()
    topics, worker = live(partitions=2, metrics_port=port)
    events = [
        event("product_view", "u-m", at(i), product_id="sku-1") for i in range(4)
    ] + [b"not json", b'{"event_id": "e-x", "type": "page_view", "user_id": "u-m"}', event("teleport", "u-m")]
    with worker:
        before = wait_until(lambda: try_metrics(port), 30, "the metrics endpoint", worker)
        assert before["journeyflow_ready"] == 1.0
        send(kafka_broker.bootstrap, topics.events, events, keys=[b"u-m"] * len(events))
        source = f'source="kafka:{topics.events}"'

        def counted() -> dict[str, float] | None:
            # The trigger comes from the per-user step, the segment entry from
            # the step after the models: wait for both.
            values = try_metrics(port) or {}
            done = (
                values.get(f"journeyflow_events_read_total{{{source}}}") == len(events)
                and values.get('journeyflow_triggers_total{rule="product_interest",variant="treatment"}') == 1
                and values.get('journeyflow_segment_entries_total{segment="highly_engaged"}') == 1
            )
            return values if done else None

        values = wait_until(counted, 30, "the metrics to count every event", worker)
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
    assert values["journeyflow_ready"] == 1.0
    assert values['journeyflow_dead_letters_total{reason="invalid_json"}'] == 1
    assert values['journeyflow_dead_letters_total{reason="missing_field"}'] == 1
    assert values['journeyflow_dead_letters_total{reason="unknown_type"}'] == 1
    assert values['journeyflow_segment_entries_total{segment="highly_engaged"}'] == 1
    lags = {k: v for k, v in values.items() if k.startswith("journeyflow_kafka_lag{")}
    assert len(lags) == 2 and all(v == 0 for v in lags.values()), lags
    assert values.get("journeyflow_kafka_errors_total") == 0
    assert values.get("journeyflow_redis_write_errors_total") == 0


@pytest.mark.slow
def test_the_worker_publishes_conversions_and_uplift_metrics(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # u-conv leaves a cart and buys two hours later: the cart_abandonment
    # trigger (u-conv is not in its holdout) converts. u-clock's purchase five
    # days on moves event time past the window plus the reorder margin, so the
    # trigger is judged and the rate gauges are set.
    port = free_port()
    topics, worker = live(partitions=2, metrics_port=port)
    cart = event("add_to_cart", "u-conv", at(0), product_id="sku-3", price=25.0)
    purchase = event("purchase", "u-conv", at(hours=2), order_id="o-conv", revenue=25.0)
    later = event("purchase", "u-clock", at(days=5), order_id="o-clock", revenue=1.0)
    conversions = TopicReader(kafka_broker.bootstrap, topics.conversions)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            send(kafka_broker.bootstrap, topics.events, [cart, purchase])
            wait_until(lambda: conversions.poll(100) or conversions.records, 60, "a conversion", worker)
            send(kafka_broker.bootstrap, topics.events, [later])

            def judged() -> dict[str, float] | None:
                values = try_metrics(port) or {}
                rate = 'journeyflow_conversion_rate{rule="cart_abandonment",variant="treatment"}'
                return values if rate in values else None

            values = wait_until(judged, 60, "the conversion rate gauge", worker)
            # One short poll may come back empty although the trigger is on the topic.
            wait_until(lambda: triggers.poll(100) or triggers.records, 30, "the trigger", worker)
            code, _ = worker.stop(signal.SIGTERM)
            assert code == 0, worker.stderr()
    finally:
        conversions.close()
        triggers.close()
    (record,) = conversions.docs()
    (trigger,) = [t for t in triggers.docs() if t["rule"] == "cart_abandonment"]
    assert record == {
        "kind": "conversion",
        "trigger_id": trigger["trigger_id"],
        "rule": "cart_abandonment",
        "variant": "treatment",
        "user_id": "u-conv",
        "ts": purchase["ts"],
        "cause_event_id": purchase["event_id"],
        "value": 25.0,
    }
    assert conversions.records[0].key == b"u-conv"
    assert values['journeyflow_conversions_total{rule="cart_abandonment",variant="treatment"}'] == 1
    assert values['journeyflow_conversion_rate{rule="cart_abandonment",variant="treatment"}'] == 1.0
