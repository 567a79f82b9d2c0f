"""The edges of start-up (issue 10): every start-up fault is one line and exit 2; ``journeyflow
topics create`` makes every required topic, and no holdout topic for rules without holdouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from journeyflow.metrics import start_metrics_server
from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.live_checks import redis_db_url
from tests.live_topics import make_topics
from tests.live_worker import REPO, Worker, worker_env
from tests.flows.fault_inputs import NO_HOLDOUT_RULES

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


# --- 6. clean edges ------------------------------------------------------------------------


def _recovery_fault(kind: str, tmp_path: Path) -> Path:
    directory = tmp_path / f"recovery-{kind}"
    directory.mkdir()
    if kind == "corrupt":
        (directory / "part-0.sqlite3").write_bytes(b"this is not a database" * 100)
    else:  # foreign: a bytewax recovery store of another flow
        import sqlite3

        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), "1"], check=True)
        db = sqlite3.connect(directory / "part-0.sqlite3")
        db.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES ('other.step', 'k', 1, NULL)")
        db.commit()
        db.close()
    return directory


@pytest.mark.parametrize(
    "fault", ["metrics_port_in_use", "corrupt_recovery", "foreign_recovery", "unreadable_rules", "missing_topics"]
)
def test_every_startup_fault_is_one_line_and_exit_2(
    fault: str, kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap)
    env = worker_env(kafka_broker.bootstrap, redis_db_url(redis_server, 8), topics)
    busy = None
    if fault == "metrics_port_in_use":
        busy, _ = start_metrics_server(0)
        env["JOURNEYFLOW_RUN_METRICS_PORT"] = str(busy.server_port)
        expected = f"run.metrics_port {busy.server_port} on 127.0.0.1 cannot be served: Address already in use"
    elif fault in ("corrupt_recovery", "foreign_recovery"):
        directory = _recovery_fault(fault.split("_")[0], tmp_path)
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(directory)
        expected = (f"recovery file '{directory}/part-0.sqlite3' is corrupt" if fault == "corrupt_recovery"
                    else "must hold the state of flow 'journeyflow'; got a snapshot of step 'other.step'")
    elif fault == "unreadable_rules":
        rules = tmp_path / "rules.toml"
        rules.mkdir()
        env["JOURNEYFLOW_SEGMENTS_RULES_FILE"] = str(rules)
        expected = f"segments.rules_file '{rules}' cannot be read: it is a directory"
    else:
        env["JOURNEYFLOW_KAFKA_EVENTS_TOPIC"] = "no-such-events"
        env["JOURNEYFLOW_KAFKA_TRIGGERS_TOPIC"] = "no-such-triggers"
        expected = "topics 'no-such-events', 'no-such-triggers' do not exist on"
    worker = Worker(env, tmp_path)
    try:
        worker.start()
        code = worker.wait(60)
    finally:
        if busy is not None:
            busy.shutdown()
    lines = [line for line in worker.stderr().splitlines() if line.strip()]
    assert code == 2, worker.stderr()
    assert len(lines) == 1 and lines[0].startswith("journeyflow: error: "), worker.stderr()
    assert expected in lines[0], lines[0]


def test_topics_create_makes_every_required_topic_with_the_configured_partitions(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = f"tc-{free_port()}"
    env = worker_env(kafka_broker.bootstrap, "", make_topics(kafka_broker.bootstrap, prefix))
    outputs = ("events", "sessions", "dead_letters", "segment_changes", "triggers", "holdouts", "conversions")
    names = {f"JOURNEYFLOW_KAFKA_{n.upper()}_TOPIC": f"{prefix}-new-{n}" for n in outputs}
    env.update(names, JOURNEYFLOW_KAFKA_PARTITIONS="3")
    command = [sys.executable, "-m", "journeyflow.cli", "topics", "create"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "created 7 topic(s) with 3 partition(s)" in done.stdout
    consumer = KafkaConsumer(bootstrap_servers=[kafka_broker.bootstrap])
    try:
        made = {name: consumer.partitions_for_topic(name) for name in names.values()}
    finally:
        consumer.close()
    assert all(parts == {0, 1, 2} for parts in made.values()), made
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already there" in again.stdout and "created" not in again.stdout
    # Rules without holdouts need no holdout topic, and it is not made.
    rules = tmp_path / "no-holdouts.toml"
    rules.write_text(NO_HOLDOUT_RULES)
    fewer = dict(env, JOURNEYFLOW_SEGMENTS_RULES_FILE=str(rules), JOURNEYFLOW_KAFKA_HOLDOUTS_TOPIC=f"{prefix}-none")
    third = subprocess.run(command, cwd=REPO, env=fewer, capture_output=True, text=True, timeout=60)
    assert third.returncode == 0, third.stderr
    assert f"{prefix}-none" not in third.stdout and "created" not in third.stdout
