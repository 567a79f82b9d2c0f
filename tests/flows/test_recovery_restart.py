"""The live worker killed (SIGKILL) and restarted, and restarted on the other build,
compared with a clean run of one process on the same input.

How two runs are compared, and what is compared exactly: ``tests/flows/run_comparison.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from journeyflow.compiled import PURE_VARIABLE, compiled_modules
from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.live_checks import (
    MODEL_RULES,
    check_store_in_step,
    committed_offsets,
    metrics,
    no_traceback,
    redis_db_url,
    try_metrics,
    wait_committed,
)
from tests.live_topics import Sent, TopicReader, make_topics, send
from tests.live_worker import Worker, wait_until, worker_env
from tests.flows.run_comparison import (
    assert_same_model_free,
    check_repeats_identical,
    clean_run,
    collect,
    model_dependent_differences,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


# --- 4. kill -9 and restart -------------------------------------------------------------


def test_kill_9_and_restart_loses_nothing_and_repeats_identically(
    dataset: list[bytes],
    feed: Any,
    kafka_broker: KafkaBroker,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    source = feed(dataset, 2)
    topics = make_topics(bootstrap, f"crash-{free_port()}", events=source.topic)
    url = redis_db_url(redis_server, 3)
    recovery = tmp_path / "crash-recovery"
    port = free_port()
    worker = Worker(
        worker_env(bootstrap, url, topics, recovery_dir=recovery, metrics_port=port), tmp_path, "crash"
    )
    read_total = f'journeyflow_events_read_total{{source="kafka:{source.topic}"}}'
    changes = TopicReader(bootstrap, topics.segment_changes)
    try:
        worker.start()
        # Fed at about 700 messages/s once the worker runs (it has committed
        # its first, empty epoch), so that it is killed while messages arrive.
        wait_until(lambda: committed_offsets(recovery), 60, "the worker's first epoch", worker)
        source.start(rate=700.0)

        # Kill once a third is committed *and* outputs of the next, unfinished
        # epoch are out: records that appear after a commit was read belong to
        # a later epoch; if that commit is still the last one, theirs is open.
        state: dict[str, Any] = {"commit": None, "seen": 0}

        def open_epoch_has_outputs() -> bool:
            committed = sum(committed_offsets(recovery).values())
            if committed < len(dataset) / 3 or committed != state["commit"]:
                state["commit"] = committed
                changes.poll(50)
                state["seen"] = len(changes.records)
                return False
            changes.poll(50)
            return len(changes.records) > state["seen"] and sum(committed_offsets(recovery).values()) == committed

        wait_until(open_epoch_has_outputs, 60, "outputs of an unfinished epoch", worker)
        read_before = metrics(port)[read_total]
        worker.kill()
        killed_at = sum(committed_offsets(recovery).values())
        assert killed_at < len(dataset), "the worker finished before it could be killed mid-way"
        # It had read, and written outputs, past its last commit (unless an epoch
        # closed in the few milliseconds between the check and the kill).
        assert read_before >= killed_at

        worker.start()
        sent = source.sent()
        wait_committed(recovery, sent.ends(), worker, timeout_s=120)
        read_after = wait_until(lambda: try_metrics(port), 10, "metrics", worker)[read_total]
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
        no_traceback(worker.stderr())
    finally:
        changes.close()
        worker.kill()
    # The restart resumed at the last commit: what was read after it is read twice.
    assert read_after == len(dataset) - killed_at
    crashed = collect(bootstrap, topics, url)
    clean = clean_run(kafka_broker, redis_server, source.topic, sent, 4, tmp_path, "clean")

    assert clean.topics["sessions"] and clean.topics["segment_changes"] and clean.topics["triggers"]
    assert clean.topics["dead_letters"]
    # (b) a repeated trigger is the same bytes under the same trigger_id.
    repeats, model_conflicts = check_repeats_identical(crashed)
    # (a) nothing of the clean run is missing after the crash, (b) nothing
    # else was written, (c) Redis ends the same: on everything the models do
    # not influence (see the module docstring), compared exactly.
    assert_same_model_free(clean, crashed)
    check_store_in_step(crashed.redis)
    check_store_in_step(clean.redis)
    print(
        f"\nkilled with {killed_at} of {len(dataset)} messages committed and {read_before:.0f} read; "
        f"{repeats} records repeated after the restart, {model_conflicts} {'/'.join(MODEL_RULES)} trigger ids "
        f"repeated with other contents; model-dependent differences from the clean run: "
        f"{model_dependent_differences(clean, crashed)}"
    )


# --- 6. a restart on the other build -------------------------------------------------------


@pytest.mark.skipif(compiled_modules() is None, reason="no compiled build in use (make install)")
def test_a_restart_on_the_other_build_resumes_the_snapshots(
    dataset: list[bytes], kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    # The worker stops after the first half on the compiled build and resumes on the source
    # (JOURNEYFLOW_PURE=1), as after `make install` replaced a fallback or the other way round:
    # its users' snapshots must resume (state/portable.py), and the outputs be a clean run's.
    bootstrap = kafka_broker.bootstrap
    events = make_topics(bootstrap, f"builds-in-{free_port()}", partitions=2).events
    half = len(dataset) // 2
    first = send(bootstrap, events, dataset[:half])
    topics = make_topics(bootstrap, f"builds-{free_port()}", events=events)
    url = redis_db_url(redis_server, 7)
    recovery = tmp_path / "builds-recovery"
    env = worker_env(bootstrap, url, topics, recovery_dir=recovery)
    with Worker({**env, PURE_VARIABLE: "0"}, tmp_path, "compiled") as worker:
        wait_committed(recovery, first.ends(), worker, timeout_s=120)
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
    second = send(bootstrap, events, dataset[half:])
    sent = Sent(first.places + second.places)
    with Worker({**env, PURE_VARIABLE: "1"}, tmp_path, "source") as worker:
        wait_committed(recovery, sent.ends(), worker, timeout_s=120)
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
        no_traceback(worker.stderr())
    resumed = collect(bootstrap, topics, url)
    clean = clean_run(kafka_broker, redis_server, events, sent, 8, tmp_path, "clean-builds")
    assert clean.topics["sessions"] and clean.topics["triggers"]
    assert_same_model_free(clean, resumed)
    check_store_in_step(resumed.redis)
