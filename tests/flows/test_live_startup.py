"""``journeyflow run`` start-up faults: each exits non-zero with one clear line (a real
subprocess, broker and redis-server).

How the tests run the worker and know it has handled everything: ``tests/live_worker.py`` and
``tests/live_checks.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.live_checks import redis_db_url
from tests.live_topics import make_topics
from tests.live_worker import Worker, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


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
