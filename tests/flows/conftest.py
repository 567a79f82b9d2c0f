"""Fixtures of the flow tests: ``live`` makes a worker wired to fresh topics and Redis
(``tests/live_worker.py`` runs it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from journeyflow import generator
from tests.conftest import KafkaBroker, RedisServer
from tests.flows.run_comparison import DAYS, SEED, USERS, Feed
from tests.live_checks import redis_db_url
from tests.live_topics import Topics, make_topics
from tests.live_worker import Worker, worker_env


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


# The input of the recovery and fault tests, whose runs tests/flows/run_comparison.py compares.
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """About 3,500 generated lines (150 users, 10 days), noise included:
    duplicates, out-of-order events, malformed lines, opt-outs, erasures."""
    path = tmp_path_factory.mktemp("data") / "events.jsonl"
    # Without identity traffic: live, a login (keyed by its user id) and its device's anonymous
    # events (keyed by the anonymous id) travel in different partitions, whose relative order
    # differs from run to run (README, "Identity stitching"); links across a crash are tested
    # in test_live_identity.py.
    config = generator.GeneratorConfig(users=USERS, days=DAYS, seed=SEED, anonymous_share=0.0, second_device_share=0.0)
    generator.generate(config, path)
    return path.read_bytes().splitlines()


@pytest.fixture
def feed(kafka_broker: KafkaBroker) -> Iterator[Any]:
    """Return ``make(lines, partitions) -> Feed`` on the session's broker."""
    feeds: list[Feed] = []

    def make(lines: list[bytes], partitions: int) -> Feed:
        feeds.append(Feed(kafka_broker.bootstrap, lines, partitions))
        return feeds[-1]

    yield make
    for made in feeds:
        if made._thread is not None:
            made._thread.join(timeout=60)
