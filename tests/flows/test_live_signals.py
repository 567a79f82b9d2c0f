"""``journeyflow run`` under SIGTERM and SIGINT: a clean stop, and a restart that continues
(a real subprocess, broker and redis-server).

How the tests run the worker and know it has handled everything: ``tests/live_worker.py`` and
``tests/live_checks.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import KafkaBroker, free_port
from tests.helpers import at, event
from tests.live_checks import no_traceback, try_metrics, wait_committed
from tests.live_topics import TopicReader, Topics, send
from tests.live_worker import Worker, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


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
