"""A replay as a cluster of processes gives one process's sessions, dead letters, triggers and profiles."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from flows.processes import Collected, Handoff
from flows.replay import replay
from journeyflow import generator
from journeyflow.report import REPORT_FILE, render
from journeyflow.report_data import read_report_data
from operators.variables import MODEL
from tests.helpers import read_jsonl, settings

# Decided from model scores, whose learning depends on the order users' updates
# reach the one models step: that order differs with the number of processes.
_MODEL_FIELDS = {*MODEL, "model_version", "recommendations"}
_MODEL_RULES = {"reengagement"}


def _profile_without_scores(row: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in row.items() if k not in _MODEL_FIELDS}
    kept["segments"] = [s for s in row["segments"] if not s.startswith("cluster:") and s != "at_risk"]
    return kept


def test_two_processes_give_the_outputs_of_one(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    generator.generate(generator.GeneratorConfig(users=150, days=14, seed=7), events, tmp_path / "truth.jsonl")
    one = replay([events], tmp_path / "one", settings(), show_progress=False)
    two = replay([events], tmp_path / "two", settings(), processes=2, show_progress=False)

    for name in ("read", "processed", "duplicates", "dead_letters", "sessions", "users", "profiles"):
        assert one[name] == two[name], name
    assert two["processes"] == 2 and two["accounted"]
    for name in ("sessions.jsonl", "dead_letters.jsonl"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    for name in ("triggers.jsonl", "holdouts.jsonl"):
        ones = [r for r in read_jsonl(tmp_path / "one" / name) if r["rule"] not in _MODEL_RULES]
        twos = [r for r in read_jsonl(tmp_path / "two" / name) if r["rule"] not in _MODEL_RULES]
        assert ones == twos, name
    assert one["triggers"] > 0
    profiles = [_profile_without_scores(r) for r in read_jsonl(tmp_path / "one" / "profiles.jsonl")]
    assert profiles and profiles == [_profile_without_scores(r) for r in read_jsonl(tmp_path / "two" / "profiles.jsonl")]
    # The report, read by both processes as they combined the outputs, is the folder's report.
    page = (tmp_path / "two" / REPORT_FILE).read_bytes()
    assert b"section-segments" in page and page == render(read_report_data(tmp_path / "two"), str(tmp_path / "two"))
    # Nothing of the cluster's bookkeeping is left behind.
    assert not list((tmp_path / "two").glob(".*"))


def test_collected_figures_add_up() -> None:
    first = Collected(read=10, last_ts_ms=5, counts={"triggers": {"total": 2, "a": 2}}, totals={"processed": 9}, users={"u1"})
    first.add(Collected(read=0, last_ts_ms=None, counts={"triggers": {"total": 1, "b": 1}}, totals={"processed": 1}, users={"u2"}))
    assert (first.read, first.last_ts_ms, first.totals, first.users) == (10, 5, {"processed": 10}, {"u1", "u2"})
    assert first.counts == {"triggers": {"total": 3, "a": 2, "b": 1}}


def test_a_worker_gone_before_its_dataflow_ended_fails_the_handoff() -> None:
    handoff = Handoff(2)
    handoff.children = [multiprocessing.get_context("fork").Process(target=os._exit, args=(3,))]
    handoff.children[0].start()
    with pytest.raises(RuntimeError, match="replay process 1 must end its dataflow; got status 3"):
        handoff.end(0)
    assert handoff.ended[0].is_set() and not handoff.ended[1].is_set()
