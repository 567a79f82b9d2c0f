"""Fixtures of the flow tests: ``live`` makes a worker wired to fresh topics and Redis
(``tests/live_worker.py`` runs it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KafkaBroker, RedisServer
from tests.live_worker import Topics, Worker, make_topics, redis_db_url, worker_env


@pytest.fixture
def live(
    kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Callable[..., tuple[Topics, Worker]]]:
    """Return ``make(partitions=2, db=1, **settings) -> (topics, worker)``: fresh topics,
    an emptied Redis database and a worker (not started) wired to them."""
    workers: list[Worker] = []

    def make(
        partitions: int = 2,
        db: int = 1,
        *,
        recovery: bool = False,
        metrics_port: int | None = None,
        **settings: Any,
    ) -> tuple[Topics, Worker]:
        topics = make_topics(kafka_broker.bootstrap, partitions=partitions)
        env = worker_env(
            kafka_broker.bootstrap,
            redis_db_url(redis_server, db),
            topics,
            recovery_dir=tmp_path / "recovery" if recovery else None,
            metrics_port=metrics_port,
            **settings,
        )
        worker = Worker(env, tmp_path, f"worker{len(workers)}")
        workers.append(worker)
        return topics, worker

    yield make
    for worker in workers:
        worker.kill()
