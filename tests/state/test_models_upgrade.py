"""A models snapshot written before models22 resumes to the same scores.

models22 keeps the clusters' scaler counts and centres in plain dicts (River's
``Counter`` and ``defaultdict``s before: ``operators.clusters``); a snapshot or a
``models.bin`` of the old form is upgraded as it loads (``Clusters.__setstate__``).
``models_s21.bin`` was written by main at session 22's start (fac1f1d's models code)
with :func:`write_fixture`: the models step's snapshot after the first
:data:`FIRST` updates of :func:`updates`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.settings import Settings, load_settings
from flows.files import ReplayClock, replay_stream
from flows.inprocess import PerUserSteps
from flows.step_configs import event_parser, journey_config, model_config
from journeyflow.events import DeadLetter
from journeyflow.generator import GeneratorConfig, generate
from journeyflow.step_records import UserUpdate
from operators.models import ModelLogic, load_models
from operators.rules import load_rules

SNAPSHOT = Path(__file__).with_name("models_s21.bin")
#: Updates learned before the snapshot (the clusters placed past their warm-up by then).
FIRST = 2500


def _settings() -> Settings:
    # Scores from the first update on: the learned models' weights count in them.
    return load_settings(env={}, overrides={"models": {"min_examples": 0}})


def updates(folder: Path) -> list[UserUpdate]:
    """The journey step's updates for a small generated data set, in input order."""
    source = folder / "events.jsonl"
    generate(GeneratorConfig(users=300, days=28, seed=7), source)
    cfg = _settings()
    steps = PerUserSteps(journey_config(cfg, load_rules(cfg.rules_path), timers=False), cfg.identity.link_idle_s * 1000)
    items = (i for i in replay_stream([source], event_parser(cfg), ReplayClock.from_settings(cfg)) if not isinstance(i, DeadLetter))
    return [r for r in steps.feed_all(items) if isinstance(r, UserUpdate)]


def _scores(logic: ModelLogic, batch: list[UserUpdate]) -> list[Any]:
    return [(u.user_id, u.ts_ms, u.scores) for u in logic.on_batch(batch)[0]]


def write_fixture(folder: Path) -> None:
    """Write :data:`SNAPSHOT` (run with the code whose form it keeps)."""
    logic = model_config(_settings()).build(None)
    logic.on_batch(updates(folder)[:FIRST])
    SNAPSHOT.write_bytes(logic.snapshot())


def test_an_old_models_snapshot_resumes_with_the_same_scores(tmp_path: Path) -> None:
    every = updates(tmp_path)
    assert len(every) > FIRST + 500
    build = model_config(_settings()).build
    uninterrupted = build(None)
    uninterrupted.on_batch(every[:FIRST])
    old = SNAPSHOT.read_bytes()
    assert b"Counter" in old and b"defaultdict" in old  # River's containers, as pickled before
    resumed = build(old)
    clusters = resumed.state.clusters
    assert type(clusters.scaler.counts) is dict
    assert clusters.model is not None and all(type(c) is dict for c in clusters.model.centers.values())
    # The state as the new code keeps it, item for item.
    assert resumed.snapshot() == build(uninterrupted.snapshot()).snapshot()  # (each loaded once: a round trip shares objects its own way)
    rest = every[FIRST:]
    expected = _scores(uninterrupted, rest)
    assert sum(1 for _, _, s in expected if s and "cluster" in s) > 100
    again = tmp_path / "again"
    again.mkdir()
    assert _scores(resumed, updates(again)[FIRST:]) == expected


def test_an_old_models_export_warm_starts_as_its_upgrade(tmp_path: Path) -> None:
    # A models.bin is the same encoded state (load_models): it loads upgraded too.
    exported = tmp_path / "models.bin"
    exported.write_bytes(SNAPSHOT.read_bytes())
    state = load_models(exported)
    assert type(state.clusters.scaler.counts) is dict
    assert state.clusters.model is not None and all(type(c) is dict for c in state.clusters.model.centers.values())
