"""The live benchmark's two measurements (``bench_live.py``): sustained throughput and
end-to-end latency; each returns its figures as a dict.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaProducer

# bench_live_stack first: it puts the repository on sys.path for `tests`.
from bench_live_stack import (
    SENTINEL,
    Worker,
    client_options,
    consumer,
    make_topics,
    metrics,
    user_key,
    wait_for,
    worker_env,
)
from bench_processes import cpu_seconds
from tests.conftest import KafkaBroker, RedisServer, free_port

__all__ = ["latency", "throughput", "snapshot_sizes"]


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

        wait_for(done, args.timeout, "every sentinel's tombstone", worker)
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
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks=1, linger_ms=args.linger_ms, **options)
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
        wait_for(lambda: "warm-3" in arrivals, args.timeout, "the warm-up trigger", worker)

        plan = _views(args.rate, args.duration)
        before = metrics(port)
        assert broker.proc is not None
        cpu_before = {"broker": cpu_seconds(broker.proc.pid), "worker": cpu_seconds(worker.proc.pid)}
        sent_at: dict[str, float] = {}
        # When the broker acknowledged each timed view: this script's own producer may queue
        # (it shares the cores), and a view the broker has not got yet is not the worker's delay.
        acked_at: dict[str, float] = {}
        started = time.time()
        for n, (event_id, user, product) in enumerate(plan):
            due = started + n / args.rate
            ahead = due - time.time()
            if ahead > 0.002:
                time.sleep(ahead)
            future = producer.send(topics["events"], key=user.encode(), value=view(event_id, user, product))
            if event_id.endswith("-3"):
                sent_at[event_id] = time.time()
                future.add_callback(lambda _, e=event_id: acked_at.setdefault(e, time.time()))
        producer.flush()
        send_s = time.time() - started
        wait_for(lambda: all(e in arrivals for e in sent_at), args.timeout, "every trigger", worker)
        lag_s = time.time() - started - send_s
        spent = where_time_went(before, metrics(port), send_s + lag_s)
        # Everything shares the machine's cores: the broker's CPU share says whether it kept up.
        spent["cpu_share"] = {
            "broker": round((cpu_seconds(broker.proc.pid) - cpu_before["broker"]) / (send_s + lag_s), 3),
            "worker": round((cpu_seconds(worker.proc.pid) - cpu_before["worker"]) / (send_s + lag_s), 3),
        }
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
    to_broker = sorted((acked_at[e] - t) * 1000 for e, t in sent_at.items() if e in acked_at)

    # Every timed trigger, for lining the stalls up with the worker's epochs afterwards
    # (absolute send time in seconds, latency to the consumer in ms).
    (workdir / "latency-timeline.json").write_bytes(orjson.dumps(
        {"started": started, "triggers": sorted((t, round((arrivals[e][0] - t) * 1000, 1)) for e, t in sent_at.items())}
    ))

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
        "broker_ack_ms": {"p50": pct(to_broker, 0.5), "p99": pct(to_broker, 0.99),
                          "max": round(to_broker[-1], 1)} if to_broker else None,
        "max_ms_by_second": [round(by_second.get(i, 0.0)) for i in range(int(send_s) + 1)],
        "spent": spent,
        "snapshots": snapshot_sizes(recovery) if recovery is not None else None,
    }


def snapshot_sizes(recovery: Path) -> dict[str, dict[str, int]]:
    """Return, per step, what the worker's epoch snapshots wrote to its recovery database:
    snapshots, bytes, and the largest one (the loop step's one key grows with the triggers
    in their window; a per-user step's are one per user touched in an epoch)."""
    import pickle
    import sqlite3

    sizes: dict[str, dict[str, int]] = {}
    for path in sorted(recovery.glob("part-*.sqlite3")):
        with sqlite3.connect(path) as db:
            for step, blob in db.execute("SELECT step_id, ser_change FROM snaps"):
                # bytewax pickles what snapshot() returned: bytes for our steps (their length
                # counts), None for a discarded key, an offset for an input partition.
                state = pickle.loads(blob) if blob is not None else None
                size = len(state) if isinstance(state, bytes) else len(blob or b"")
                entry = sizes.setdefault(step.removeprefix("journeyflow.").removesuffix(".stateful_batch"),
                                         {"snapshots": 0, "bytes": 0, "largest": 0})
                entry["snapshots"] += 1
                entry["bytes"] += size
                entry["largest"] = max(entry["largest"], size)
    return sizes


def where_time_went(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, Any]:
    """Return, from two scrapes of the worker's metrics (``journeyflow/io_metrics.py``), what
    each sink and the garbage collector took between them: batches, records, seconds and
    their share of ``wall_s``; and the records per non-empty input poll."""
    def delta(series: str) -> float:
        return after.get(series, 0.0) - before.get(series, 0.0)

    sinks: dict[str, dict[str, float]] = {}
    for series in after:
        if series.startswith("journeyflow_sink_write_seconds_count{"):
            label = series[series.index("{"):]
            name = label.split('"')[1]
            batches = delta(series)
            if batches:
                seconds = delta(f"journeyflow_sink_write_seconds_sum{label}")
                sinks[name] = {"batches": int(batches), "records": int(delta(f"journeyflow_sink_records_total{label}")),
                               "seconds": round(seconds, 2), "share": round(seconds / wall_s, 3)}
    gc_pauses = {}
    for gen in range(3):
        label = f'{{generation="{gen}"}}'
        seconds = delta(f"journeyflow_gc_pause_seconds_sum{label}")
        gc_pauses[str(gen)] = {"count": int(delta(f"journeyflow_gc_pause_seconds_count{label}")),
                               "seconds": round(seconds, 3), "share": round(seconds / wall_s, 3)}
    polls = delta("journeyflow_source_batch_records_count")
    return {
        "wall_s": round(wall_s, 2),
        "sinks": sinks,
        "gc": gc_pauses,
        "input_polls": int(polls),
        "records_per_poll": round(delta("journeyflow_source_batch_records_sum") / polls, 1) if polls else None,
        "input_delay_ms": round(delta("journeyflow_input_delay_seconds_sum") / polls * 1000, 1) if polls else None,
    }
