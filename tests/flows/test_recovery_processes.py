"""The live worker split over two processes, compared with a clean run of one process on
the same input.

How two runs are compared, and what is compared exactly: ``tests/flows/run_comparison.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.live_checks import check_store_in_step, no_traceback, redis_db_url, try_metrics, wait_committed
from tests.live_topics import make_topics
from tests.live_worker import Worker, wait_until, worker_env
from tests.flows.run_comparison import assert_same_model_free, clean_run, collect, model_dependent_differences

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


# --- 5. two processes ---------------------------------------------------------------------


def test_two_processes_write_what_one_process_writes(
    dataset: list[bytes],
    feed: Any,
    kafka_broker: KafkaBroker,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    source = feed(dataset, 2)
    events = source.topic
    sent = source.start().sent()
    assert set(sent.ends()) == {0, 1}
    one = clean_run(kafka_broker, redis_server, events, sent, 5, tmp_path, "one")

    topics = make_topics(bootstrap, f"two-{free_port()}", events=events)
    url = redis_db_url(redis_server, 6)
    recovery = tmp_path / "two-recovery"
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    # The same settings for both, but for the metrics port (one host here).
    ports = [free_port(), free_port()]
    workers = [
        Worker(
            worker_env(bootstrap, url, topics, recovery_dir=recovery, metrics_port=ports[i]),
            tmp_path,
            f"proc{i}",
            ["--process-id", str(i), "--addresses", addresses],
        )
        for i in range(2)
    ]
    read_total = f'journeyflow_events_read_total{{source="kafka:{events}"}}'
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            wait_committed(recovery, sent.ends(), worker, timeout_s=120)
        reads = [
            wait_until(lambda port=port: try_metrics(port), 30, "metrics", worker).get(read_total, 0)
            for port, worker in zip(ports, workers)
        ]
        # Each process read one of the two partitions.
        assert sorted(reads) == sorted(sent.ends().values()), reads
        # A cluster stops when every process is told to: one process alone
        # waits for its peers (bytewax), so signal both, then wait.
        for worker in workers:
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(30) == 0, worker.stderr()
            no_traceback(worker.stderr())
    finally:
        for worker in workers:
            worker.kill()
    two = collect(bootstrap, topics, url)

    check_store_in_step(two.redis)
    assert one.topics["sessions"] and one.topics["triggers"]
    assert_same_model_free(one, two)
    print(f"\nmodel-dependent differences, one process vs two: {model_dependent_differences(one, two)}")
