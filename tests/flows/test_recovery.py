"""The live worker under a crash (SIGKILL and restart) and split over two processes,
compared with a clean run of one process on the same input.

Both runs of a comparison read the *same* events topic (there are no consumer
groups: each worker keeps its own offsets in its recovery directory) and
write to their own output topics and Redis database, so their records can be
compared byte for byte, dead letters' ``source`` included. Completion is
judged by bytewax's committed offsets reaching the end of every partition
(``tests/live_worker.py``: ``wait_committed``), never by the broker's end offsets.

What is compared exactly: everything the global models do not influence
(:func:`model_free`): sessions, dead letters, tombstones, the triggers of
rules that read no score, each user's transitions between model-free segment
lists, and the Redis profiles' fields and model-free memberships.

What is not: the models step is one global key that learns from every user
in the order their updates reach it, and bytewax hands a stateful step each
activation's items grouped by key, so that order depends on how the input
happened to be batched (arrival timing) and, with several partitions, on
their interleaving. Scores, learned clusters (``cluster:N``), ``at_risk``,
``reengagement`` and whatever carries them (segment-change profiles, the
Redis ``segments`` and ``updated_at``) therefore differ between any two runs
that do not read the input in the same batches, a restart after a crash
included; so do the recommendations (the Redis ``recommendations`` field),
which the product shards learn from every user in arrival order. Two runs over a topic produced beforehand were identical; one run
reading the same 3,500 messages while they were produced (700/s) differed
from them in about 240 of 370 segment changes, with one partition and no
crash. The tests print these model-dependent differences (``pytest -s``).
"""

from __future__ import annotations

import signal
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from journeyflow import generator
from journeyflow.compiled import PURE_VARIABLE, compiled_modules
from journeyflow.records import ProfileRow, SegmentChange, Tombstone
from operators.variables import MODEL
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import StateStore
from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.live_worker import (
    MODEL_RULES,
    MODEL_SEGMENT_PREFIXES,
    MODEL_SEGMENTS,
    OUTPUTS,
    Sent,
    Topics,
    TopicReader,
    Worker,
    check_store_in_step,
    committed_offsets,
    make_topics,
    metrics,
    no_traceback,
    redis_db_url,
    redis_dump,
    send,
    try_metrics,
    wait_committed,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

USERS = 150
DAYS = 10
SEED = 3


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


@dataclass
class RunOutput:
    """Everything one run wrote: each topic's ``(key, value)`` records, and Redis."""

    topics: dict[str, list[tuple[bytes | None, bytes]]]
    redis: dict[str, Any]

    def docs(self, name: str) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _, value in self.topics[name]]


def collect(bootstrap: str, topics: Topics, redis_url: str) -> RunOutput:
    records: dict[str, list[tuple[bytes | None, bytes]]] = {}
    for name, topic in topics.outputs().items():
        reader = TopicReader(bootstrap, topic)
        try:
            reader.drain(400)
            records[name] = reader.pairs()
        finally:
            reader.close()
    return RunOutput(records, redis_dump(redis_url))


def clean_run(
    broker: KafkaBroker, server: RedisServer, events: str, sent: Sent, db: int, tmp: Path, name: str
) -> RunOutput:
    """Run one worker over the whole (already produced) events topic; return its outputs."""
    topics = make_topics(broker.bootstrap, f"{name}-{free_port()}", events=events)
    url = redis_db_url(server, db)
    recovery = tmp / f"{name}-recovery"
    worker = Worker(worker_env(broker.bootstrap, url, topics, recovery_dir=recovery), tmp, name)
    with worker:
        wait_committed(recovery, sent.ends(), worker, timeout_s=120)
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
    return collect(broker.bootstrap, topics, url)


def is_model_segment(name: str) -> bool:
    return name in MODEL_SEGMENTS or name.startswith(MODEL_SEGMENT_PREFIXES)


def model_free(run: RunOutput) -> dict[str, Any]:
    """Return what of a run does not depend on the global models' learning order.

    Sessions, dead letters and tombstones whole; triggers of rules that read no
    score; the transitions (user, time, cause, segment list without the model
    segments) where that list changes, as a set (repeats after a restart are
    the same transitions); Redis profiles without
    ``segments``, ``updated_at`` and the scores (all move with the models) and
    ``recommendations`` (learned across users in arrival order), the
    profile's model-free segments, and the members of model-free segments.
    """
    changes: set[tuple[Any, ...]] = set()
    last: dict[str, tuple[str, ...]] = {}
    tombstones = set()
    for key, value in run.topics["segment_changes"]:
        doc = orjson.loads(value)
        user = doc["user_id"]
        if doc["kind"] in ("tombstone", "merge"):
            # After a merge the device's journey is the customer's (its alias is in Redis).
            tombstones.add((key, value))
            last.pop(doc.get("anonymous_id", user), None)
            continue
        segments = tuple(s for s in doc["segments"] if not is_model_segment(s))
        if segments != last.get(user, ()):
            # A set: after a restart, repeated changes are the same transition.
            changes.add((user, doc["ts"], doc["cause_event_id"], segments))
            last[user] = segments
    triggers = {
        (key, value) for key, value in run.topics["triggers"] if orjson.loads(value)["rule"] not in MODEL_RULES
    }
    profiles = {}
    members = {}
    for key, value in run.redis.items():
        if key.startswith("jf:profile:"):
            # Scores (and whether a cluster is known yet) depend on the learning order,
            # and the recommender learns from every user in arrival order too.
            fields = {
                f: v for f, v in value.items() if f not in ("segments", "updated_at", "recommendations", *MODEL)
            }
            fields["segments"] = [s for s in orjson.loads(value.get("segments", "[]")) if not is_model_segment(s)]
            profiles[key] = fields
        elif key.startswith("jf:alias:") or not is_model_segment(key.removeprefix("jf:segment:")):
            members[key] = value
    return {
        "sessions": set(run.topics["sessions"]),
        "dead_letters": set(run.topics["dead_letters"]),
        "holdouts": set(run.topics["holdouts"]),
        "tombstones and merges": tombstones,
        "triggers": triggers,
        "segment_changes": changes,
        "profiles": profiles,
        "members": members,
    }


def assert_same_model_free(first: RunOutput, second: RunOutput) -> None:
    a, b = model_free(first), model_free(second)
    for part in a:
        if a[part] != b[part]:
            only_a = _difference(a[part], b[part])
            only_b = _difference(b[part], a[part])
            pytest.fail(f"{part} differ:\n only in the first: {only_a}\n only in the second: {only_b}")


def _difference(x: Any, y: Any) -> list[Any]:
    if isinstance(x, set):
        return sorted(x - y, key=repr)[:5]
    return [(k, v, y.get(k)) for k, v in sorted(x.items()) if y.get(k) != v][:5]


def model_dependent_differences(first: RunOutput, second: RunOutput) -> dict[str, int]:
    """Count the records that differ between two runs, whole (for the record)."""
    counts = {}
    for name in OUTPUTS:
        a, b = set(first.topics[name]), set(second.topics[name])
        counts[name] = len(a ^ b)
    counts["redis_keys"] = sum(
        1 for k in set(first.redis) | set(second.redis) if first.redis.get(k) != second.redis.get(k)
    )
    return counts


def check_repeats_identical(run: RunOutput) -> tuple[int, int]:
    """Assert that triggers repeated after a restart are byte-identical under the
    same ``trigger_id``, for the rules that read no score.

    Returns how many records were exact repeats, and how many ``trigger_id``
    of the model-driven rules came with different contents (scores learned in
    another order: see the module docstring).
    """
    by_id: dict[str, set[bytes]] = defaultdict(set)
    rules: dict[str, str] = {}
    for _, value in run.topics["triggers"] + run.topics["holdouts"]:
        doc = orjson.loads(value)
        by_id[doc["trigger_id"]].add(value)
        rules[doc["trigger_id"]] = doc["rule"]
    conflicting = {tid: values for tid, values in by_id.items() if len(values) > 1}
    model_driven = {tid for tid in conflicting if rules[tid] in MODEL_RULES}
    wrong = [(tid, sorted(conflicting[tid])) for tid in conflicting if tid not in model_driven]
    assert not wrong, f"same trigger_id, different content: {wrong[:3]}"
    repeats = sum(len(records) - len(set(records)) for records in run.topics.values())
    return repeats, len(model_driven)


class Feed:
    """Lines sent to a new events topic from a background thread, in their order
    (the same in every run; per-partition order is all the worker depends on)."""

    def __init__(self, bootstrap: str, lines: list[bytes], partitions: int) -> None:
        self.bootstrap = bootstrap
        self.lines = lines
        self.topic = make_topics(bootstrap, f"rec-{free_port()}", partitions=partitions).events
        self._thread: threading.Thread | None = None
        self._sent: list[Sent] = []

    def start(self, rate: float | None = None) -> Feed:
        """Start sending, at ``rate`` messages/s (``None``: as fast as possible)."""
        self._thread = threading.Thread(target=lambda: self._sent.append(
            send(self.bootstrap, self.topic, self.lines, rate=rate)), daemon=True)
        self._thread.start()
        return self

    def sent(self, timeout_s: float = 60) -> Sent:
        """Wait until every line is acknowledged; return where they went."""
        assert self._thread is not None
        self._thread.join(timeout=timeout_s)
        assert self._sent, "the producer failed or did not finish in time"
        return self._sent[0]


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


# --- the profile store under replays ------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_store_stays_in_step_when_a_replayed_change_differs(kind: str, request: pytest.FixtureRequest) -> None:
    # After a restart the unfinished epoch is replayed from the last snapshot,
    # and the models may decide differently the second time: the replayed
    # change enters cluster:5 where the first one had entered cluster:3, and
    # nothing will ever say "exited cluster:3". Memberships must follow the list.
    store: StateStore = (
        RedisStore.connect(request.getfixturevalue("redis_url")) if kind == "redis" else InMemoryStore()
    )
    ts = 1_795_343_460_000
    try:
        store.apply([SegmentChange("u1", ts, ("new_visitor",), (), ("new_visitor",), "e1", {})])
        # First pass of the unfinished epoch, then the crash.
        store.apply([SegmentChange("u1", ts + 1, ("cluster:3",), (), ("cluster:3", "new_visitor"), "e2", {})])
        # The replay, from the state before e2.
        store.apply([
            SegmentChange("u1", ts + 1, ("cluster:5",), (), ("cluster:5", "new_visitor"), "e2", {}),
            ProfileRow("u1", ts + 1, {"visits": 2}, ("cluster:5", "new_visitor")),
        ])
        assert store.members("cluster:3") == set()
        assert store.members("cluster:5") == {"u1"}
        assert store.members("new_visitor") == {"u1"}
        profile = store.profile("u1")
        assert profile is not None and orjson.loads(profile["segments"]) == ["cluster:5", "new_visitor"]
        # The erasure removes every membership the profile held, whatever the tombstone lists.
        store.apply([Tombstone("u1", ts + 2, "e3", ("new_visitor",))])
        assert store.profile("u1") is None
        assert store.members("cluster:5") == set() and store.members("new_visitor") == set()
    finally:
        store.close()
