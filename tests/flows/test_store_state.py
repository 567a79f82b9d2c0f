"""The store's repair step (``flows/store_state.py``): a batch folded at once keeps the hash
that applying its records one by one keeps, and the step's recovery path is unchanged."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.store_state import StoreStateConfig, store_state
from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone
from state.store import Restore, apply_record, field_text, row_changes

_NAMES = ("visits", "channel", "cart_value", "last_product", "tags", "churn_risk")
_SEGMENTS = ("vip", "browsers", "at_risk", "new")
_BASE_MS = 1_795_343_460_000


def _value(rng: random.Random) -> Any:
    return rng.choice([None, rng.randint(0, 9), rng.random(), "web", True, ["sku-1", 2], {"a": 0.5}])


def _record(rng: random.Random, user: str) -> Any:
    # Times go back as well as forward (a row's updated_at only moves forward), with and
    # without milliseconds (their text forms compare only once padded).
    ts = _BASE_MS + rng.choice([0, 250, 1000, 3000, -1000, rng.randint(-5000, 5000)])
    kind = rng.choices(["row", "change", "tombstone", "restore", "merge", "odd_row"], [12, 5, 1, 1, 1, 1])[0]
    segments = tuple(rng.sample(_SEGMENTS, rng.randint(0, 3)))
    if kind == "row":
        fields = {name: _value(rng) for name in rng.sample(_NAMES, rng.randint(0, 4))}
        return ProfileRow(user, ts, fields, rng.choice([None, segments]))
    if kind == "odd_row":
        # A row naming the fields the step formats itself: applied in its place.
        return ProfileRow(user, ts, {rng.choice(["updated_at", "segments"]): rng.choice([None, "x"])}, None)
    if kind == "change":
        return SegmentChange(user, ts, segments[:1], (), segments, "e1", {})
    if kind == "tombstone":
        return Tombstone(user, ts, None, segments)
    if kind == "restore":
        return Restore(user, {"visits": "1", "updated_at": "2026-11-22T10:31:00.500Z", "segments": '["vip"]'})
    return IdentityMerge(user, "a-1", ts, None)


def test_a_folded_batch_keeps_the_hash_records_one_by_one_keep() -> None:
    rng = random.Random(7)
    clock = [100.0]
    cfg = StoreStateConfig(check_s=10, now=lambda: clock[0], losses=lambda: 0.0)
    batches = 0
    for _ in range(400):
        logic = (
            cfg.build(None)
            if rng.random() < 0.5
            else cfg.build(orjson.dumps(["u1", {"visits": "2", "updated_at": "2026-11-22T10:31:01Z"}, 1.0, 2.0, 3.0]))
        )
        expected = None if logic.fields is None else dict(logic.fields)
        for _ in range(rng.randint(1, 6)):
            values = [_record(rng, "u1") for _ in range(rng.randint(1, 8))]
            for record in values:
                expected = apply_record(expected, record)
            out, discard = logic.on_batch(list(values))
            batches += 1
            _assert_same_writes(list(out), values)
            assert discard == (expected is None)
            assert logic.fields == expected, values
            if discard:
                break
    assert batches > 1000


def _assert_same_writes(out: list[Any], values: list[Any]) -> None:
    """``out`` is ``values`` in order, each record as it came but a plain profile row, which
    comes with its values as text: what the store writes for either is the same."""
    assert len(out) == len(values)
    for passed, record in zip(out, values):
        plain = type(record) is ProfileRow and not {"updated_at", "segments"} & record.fields.keys()
        if not plain:
            assert passed is record
            continue
        assert type(passed) is ProfileRow and passed is not record
        assert (passed.user_id, passed.ts_ms, passed.segments, passed.final) == (
            record.user_id, record.ts_ms, record.segments, record.final
        )
        assert passed.fields == {k: None if v is None else field_text(v) for k, v in record.fields.items()}
        assert row_changes(passed) == row_changes(record)
        assert apply_record({}, passed) == apply_record({}, record)


def test_a_discard_inside_a_batch_starts_the_user_anew() -> None:
    clock = [100.0]
    cfg = StoreStateConfig(check_s=10, now=lambda: clock[0], losses=lambda: 0.0)
    logic = cfg.build(orjson.dumps(["u1", {"visits": "2"}, 1.0, 2.0, 3.0]))
    row = ProfileRow("u1", _BASE_MS, {"visits": 1}, None)
    _, discard = logic.on_batch([Tombstone("u1", _BASE_MS, None), row])
    assert not discard
    assert (logic.synced, logic.written, logic.checked) == (100.0, 100.0, 100.0)
    assert logic.fields == {"visits": "1", "updated_at": "2026-11-22T10:31:00Z"}


def test_the_step_keeps_its_recovery_path(tmp_path: Path) -> None:
    # Recovery keeps state by step path: the path op.stateful gave this step before
    # must stay, or a restarted worker silently loses every user's copy.
    init_db_dir(tmp_path, 1)
    flow = Dataflow("repair_path")
    rows = op.input("in", flow, TestingSource([ProfileRow("u1", _BASE_MS, {"visits": 1}, ("vip",))]))
    out: list[Any] = []
    op.output("out", store_state("store_state", rows, StoreStateConfig(check_s=60)), TestingSink(out))
    run_main(flow, epoch_interval=timedelta(seconds=0), recovery_config=RecoveryConfig(str(tmp_path)))
    assert len(out) == 1
    with sqlite3.connect(tmp_path / "part-0.sqlite3") as db:
        rows_held = db.execute(
            "SELECT step_id, state_key, ser_change FROM snaps WHERE step_id LIKE '%store%'"
        ).fetchall()
    assert [(step, key) for step, key, _ in rows_held] == [("repair_path.store_state.stateful_batch", "u1")]
