"""The live worker under faults (issue 10): a fuzz of poison messages, SIGTERM with metrics on
loopback and duplicates counted, rules without holdouts.

Everything runs on loopback against real servers: the session's Tansu broker
and redis-server (``tests/conftest.py``), private ones where a test restarts
them, and :class:`tests.proxy.TcpProxy` in front of them where a test cuts the
network (Tansu keeps its data only in memory, so it advertises the proxy's
port and the proxy is cut instead). Waits are bounded; outages last as long
as the issue asks (Redis 60 s, the broker 30 s).
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests.conftest import KafkaBroker, free_port
from tests.live_checks import no_traceback, try_metrics
from tests.live_topics import TopicReader, Topics, send
from tests.live_worker import Worker, wait_until
from tests.flows.fault_inputs import NO_HOLDOUT_RULES, assert_no_personal_data, poison_inputs, valid_after

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


# The `live` fixture is tests/flows/conftest.py's; these tests use Redis database 7.


def _big_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=[bootstrap], acks="all", max_request_size=8 << 20)


@pytest.mark.slow
def test_fuzz_through_the_live_worker(live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker) -> None:
    port = free_port()
    topics, worker = live(db=7, metrics_port=port)
    poison = poison_inputs()
    dead = TopicReader(kafka_broker.bootstrap, topics.dead_letters)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    producer = _big_producer(kafka_broker.bootstrap)
    try:
        with worker:
            for raw in poison:
                producer.send(topics.events, key=b"u-fuzz", value=raw)
            for doc in valid_after():
                producer.send(topics.events, key=b"u-after", value=orjson.dumps(doc))
            producer.flush()
            wait_until(lambda: triggers.poll(100) or triggers.records, 90, "the trigger after the poison", worker)
            wait_until(lambda: dead.poll(100) is not None and len(dead.records) >= len(poison), 60,
                       "every poison message's dead letter", worker)
            values = wait_until(lambda: try_metrics(port), 10, "metrics", worker)
            assert worker.proc is not None and worker.proc.poll() is None
            code, _ = worker.stop(signal.SIGTERM)
            assert code == 0, worker.stderr()
    finally:
        producer.close()
        dead.close()
        triggers.close()
    assert len(dead.records) == len(poison)
    for record in dead.records:
        assert len(record.value) <= 262144
        assert_no_personal_data(record.value.decode("utf-8", "replace"), "events-dlq")
    [big] = [d for d in (orjson.loads(r.value) for r in dead.records) if d["code"] == "too_large"]
    assert big["truncated_from"] == len(poison[0])
    assert big["raw_sha256"] == hashlib.sha256(poison[0]).hexdigest()
    assert [orjson.loads(r.value)["rule"] for r in triggers.records] == ["product_interest"]
    assert values["journeyflow_ready"] == 1.0


@pytest.mark.slow
def test_sigterm_stops_without_a_panic_and_metrics_listen_on_loopback_and_count_duplicates(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    port = free_port()
    topics, worker = live(db=7, metrics_port=port)
    views = valid_after("u-dup")
    with worker:
        send(kafka_broker.bootstrap, topics.events, views + views[:3])  # three duplicates
        values = wait_until(
            lambda: (m := try_metrics(port)) and m.get("journeyflow_duplicates_total") == 3 and m, 60,
            "three duplicates counted", worker,
        )
        assert values["journeyflow_ready"] == 1.0
        listening = _listening_addresses(port)
        code, took = worker.stop(signal.SIGTERM)
    stderr = worker.stderr()
    assert code == 0 and took < 10, stderr
    assert listening == {"127.0.0.1"}
    assert "panicked" not in stderr and "backtrace" not in stderr, stderr
    no_traceback(stderr)
    # Only journeyflow's own log lines, each a JSON object.
    for line in stderr.splitlines():
        assert isinstance(orjson.loads(line), dict), line


def _listening_addresses(port: int) -> set[str]:
    """Return the local addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add(address)
    return found


@pytest.mark.slow
def test_the_worker_needs_no_holdout_topic_unless_a_rule_has_a_holdout(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "no-holdouts.toml"
    rules.write_text(NO_HOLDOUT_RULES)
    topics, worker = live(db=7, segments_rules_file=rules)
    worker.env["JOURNEYFLOW_KAFKA_HOLDOUTS_TOPIC"] = f"absent-holdouts-{free_port()}"
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            send(kafka_broker.bootstrap, topics.events, valid_after("u-h"))
            wait_until(lambda: triggers.poll(100) or triggers.records, 60, "a trigger", worker)
    finally:
        triggers.close()
    # With a holdout rule (the shipped rules have two), the holdout topic is required.
    env = dict(worker.env)
    del env["JOURNEYFLOW_SEGMENTS_RULES_FILE"]
    refused = Worker(env, tmp_path, "holdouts-required").start()
    assert refused.wait(60) == 2
    assert f"topic '{env['JOURNEYFLOW_KAFKA_HOLDOUTS_TOPIC']}' does not exist" in refused.stderr()
