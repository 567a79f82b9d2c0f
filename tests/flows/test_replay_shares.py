"""Each process of a replay cluster reads the input and keeps its own users' items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main

from flows.files import ReplayClock, ReplayProgress, replay_stream
from flows.step_configs import event_parser
from flows.replay_shares import ReplayShares, first_key, owner_worker
from journeyflow import generator
from journeyflow.events import DeadLetter, Event
from journeyflow.step_records import Expect, Tick
from tests.helpers import settings


@pytest.mark.parametrize("workers", [2, 3])
def test_owner_worker_is_where_bytewax_keeps_a_keys_state(workers: int) -> None:
    keys = [f"u{i}" for i in range(200)] + ["models", "loop", "popularity", "a-" + "9f3" * 20, "é", ""]
    seen: dict[str, int] = {}
    flow = Dataflow("owners")
    up = op.input("in", flow, TestingSource([(key, 1) for key in keys]))
    kept = op.stateful_map("state", up, lambda state, value: (value, value))
    op.inspect_debug("where", kept, lambda step, item, epoch, worker: seen.__setitem__(item[0], worker))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert seen == {key: owner_worker(key, workers) for key in keys}


def _share(source: ReplayShares, worker: int, workers: int) -> list[Any]:
    part = source.build("read", worker, workers)
    items: list[Any] = []
    while True:
        try:
            items.extend(part.next_batch())
        except StopIteration:
            return items


def _check_split(events: Path, processes: int, per_process: int) -> list[Any]:
    """Check that the shares of ``events`` are one process's stream split by owner; return that stream."""
    cfg = settings()
    clock = ReplayClock.from_settings(cfg)
    everyone = ReplayProgress()
    whole = list(replay_stream([events], event_parser(cfg), clock, everyone))
    workers = processes * per_process
    shares, progresses = [], []
    for worker in range(workers):
        progress = ReplayProgress()
        source = ReplayShares([events], event_parser(cfg), progress, clock, processes=processes, batch_size=97)
        shares.append(_share(source, worker, workers))
        progresses.append(progress)
    # Only the first worker of each process reads.
    assert all(not share for worker, share in enumerate(shares) if worker % per_process)
    for worker in range(0, workers, per_process):
        process = worker // per_process
        wanted = [
            item
            for item in whole
            if (process == 0 if isinstance(item, DeadLetter) else owner_worker(first_key(item), workers) // per_process == process)
        ]
        assert shares[worker] == wanted
        assert progresses[worker].read == sum(isinstance(item, (Event, DeadLetter)) for item in wanted)
    assert sorted(map(repr, (item for share in shares for item in share))) == sorted(map(repr, whole))
    assert sum(p.read for p in progresses) == sum(isinstance(item, (Event, DeadLetter)) for item in whole)
    # Each key is one process's: the shares' users add up to one process's.
    assert sum(p.users for p in progresses) == everyone.users
    assert any(isinstance(item, DeadLetter) for item in whole) and len({len(s) for s in shares if s}) > 1
    return whole


@pytest.mark.parametrize(("processes", "per_process"), [(2, 1), (3, 2)])
def test_the_shares_are_the_one_process_stream_split_by_owner(tmp_path: Path, processes: int, per_process: int) -> None:
    events = tmp_path / "events.jsonl"
    generator.generate(generator.GeneratorConfig(users=60, days=7, seed=3), events, tmp_path / "truth.jsonl")
    whole = _check_split(events, processes, per_process)
    assert any(isinstance(item, Expect) for item in whole)
    assert any(isinstance(item, Tick) and item.device for item in whole)


def test_a_linked_devices_events_and_its_logins_placeholder_go_where_one_process_sends_them(tmp_path: Path) -> None:
    lines = []
    for i in range(12):
        device, user = f"anon-{i}", f"u{i}"
        for n, (kind, ids) in enumerate(
            [("page_view", {"anonymous_id": device}), ("login", {"anonymous_id": device, "user_id": user}),
             ("page_view", {"anonymous_id": device}), ("page_view", {"user_id": user})]
        ):  # fmt: skip
            ts = f"2026-08-01T00:{i:02d}:{n * 10:02d}Z"
            lines.append(orjson.dumps({"event_id": f"e{i}-{n}", "type": kind, "ts": ts, **ids}).decode())
        lines.append('{"event_id": "bad"')
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    whole = _check_split(events, 2, 1)
    # A linked device's page views go to its customer; each login's placeholder too.
    assert sum(isinstance(item, Event) and item.user_id is None and item.user != item.anonymous_id for item in whole) == 12
    assert sum(isinstance(item, Expect) for item in whole) == 12


def test_workers_must_divide_among_processes(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    cfg = settings()
    source = ReplayShares([events], event_parser(cfg), ReplayProgress(), ReplayClock.from_settings(cfg), processes=2)
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        source.build("read", 0, 3)
