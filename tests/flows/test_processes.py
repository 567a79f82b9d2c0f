"""A replay as a cluster of processes gives one process's sessions, dead letters, triggers and profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.processes import Collected
from flows.replay import replay
from journeyflow import generator
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
    # Nothing of the cluster's bookkeeping is left behind.
    assert not list((tmp_path / "two").glob(".*"))


def test_collected_figures_add_up() -> None:
    first = Collected(read=10, last_ts_ms=5, counts={"triggers": {"total": 2, "a": 2}}, totals={"processed": 9}, users={"u1"})
    first.add(Collected(read=0, last_ts_ms=None, counts={"triggers": {"total": 1, "b": 1}}, totals={"processed": 1}, users={"u2"}))
    assert (first.read, first.last_ts_ms, first.totals, first.users) == (10, 5, {"processed": 10}, {"u1", "u2"})
    assert first.counts == {"triggers": {"total": 3, "a": 2, "b": 1}}
