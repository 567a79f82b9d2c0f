"""The Kafka sinks' partitioner puts every key where kafka-python's default one does."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from kafka.partitioner.default import DefaultPartitioner

import flows.kafka_sink
from flows.kafka_sink import KeyPartitioner


def _cluster(partitions: set[int]) -> SimpleNamespace:
    return SimpleNamespace(
        topics=lambda: {"t"},
        partitions_for_topic=lambda topic: partitions,
        available_partitions_for_topic=lambda topic: partitions,
    )


def test_every_key_goes_where_the_default_partitioner_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Few hashes kept, so the memory starts afresh many times; the partition count
    # changes under remembered keys (a topic given more partitions).
    monkeypatch.setattr(flows.kafka_sink, "_HASHES_KEPT", 50)
    rng = random.Random(3)
    keys = [f"u-{rng.randint(0, 300)}".encode() for _ in range(5000)]
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    for index, key in enumerate(keys):
        cluster = _cluster(set(range(1 + (index // 1000) * 2)))
        assert ours.partition("t", None, key, None, None, cluster) == theirs.partition(
            "t", None, key, None, None, cluster
        )
    assert len(ours._hashes) <= 50


def test_a_record_without_a_key_goes_to_an_available_partition_and_an_unknown_topic_is_refused() -> None:
    cluster = _cluster({0, 1, 2})
    assert KeyPartitioner().partition("t", None, None, None, None, cluster) in {0, 1, 2}
    with pytest.raises(ValueError, match="not found"):
        KeyPartitioner().partition("other", None, b"u1", None, None, cluster)
