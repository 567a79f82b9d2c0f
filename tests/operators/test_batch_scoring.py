"""Scoring many customers at once (operators.batch_scoring) gives the very floats of scoring them one by one,
and a batch through the models step gives the same records and state as its updates one at a time."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from journeyflow.step_records import UserUpdate
from operators import batch_scoring, bgnbd
from operators.batch_scoring import TOGETHER, can_score, p_none_many, raw_many
from operators.features import pack, pack_rows
from operators.labels import Example
from operators.models import ModelConfig, ModelLogic
from state.serde import encode_state
from tests.operators.test_model_scoring import CFG, _learn, _rows

CASES = [((), 0), (("churn",), 0), (("propensity",), 0), (("churn", "propensity"), 0), (("churn", "propensity"), 10_000)]
IDS = ["untrained", "churn only", "propensity only", "both", "neither has a say"]


def _trained(tasks: tuple[str, ...], min_examples: int, seed: int = 5) -> tuple[ModelLogic, random.Random]:
    rng = random.Random(seed)
    logic = ModelConfig(**{**CFG.__dict__, "min_examples": min_examples}).build(None)
    _learn(logic, rng, tasks, 1500)
    return logic, rng


@pytest.mark.parametrize(("tasks", "min_examples"), CASES, ids=IDS)
def test_raw_many_gives_the_floats_of_raw_one_by_one(tasks: tuple[str, ...], min_examples: int) -> None:
    logic, rng = _trained(tasks, min_examples)
    assert can_score(logic.scorer, logic.state)
    packed = [pack_rows(_rows(rng)) for _ in range(400)]
    now_ms = [n * 3_600_000 for n in range(400)]
    one_by_one = []
    for p, ms in zip(packed, now_ms, strict=True):
        published, _ = logic.scorer.raw(logic.state, [tuple(r) for r in np.frombuffer(p).reshape(5, -1).tolist()], ms)
        one_by_one.append((published["churn"], published["propensity"]))
    # ==, not approx: the same bits (a published score is rounded, which would hide a last-bit change).
    assert raw_many(logic.scorer, logic.state, packed, now_ms) == one_by_one


def test_p_none_many_gives_the_floats_of_p_none() -> None:
    rng = random.Random(11)
    for _ in range(200):
        m = bgnbd.BgNbd(rng.uniform(0.01, 10), rng.uniform(0.01, 50), rng.uniform(0.01, 5), rng.uniform(0.01, 50))
        x = np.array([float(rng.randrange(0, 20)) for _ in range(100)])
        T = np.array([rng.uniform(0, 400) for _ in range(100)])
        t_x = np.array([rng.uniform(0, t) if xi else 0.0 for xi, t in zip(x, T, strict=True)])
        tau = rng.choice((7.0, 30.0, rng.uniform(0, 60)))
        expected = [bgnbd.p_none(m, *args, tau) for args in zip(x.tolist(), t_x.tolist(), T.tolist(), strict=True)]
        assert p_none_many(m, x, t_x, T, tau).tolist() == expected


def _updates(rng: random.Random, n: int, *, with_examples_every: int) -> list[UserUpdate]:
    out = []
    for i in range(n):
        rows = _rows(rng)
        examples = (Example("churn", i, pack(rows[0]), rng.random() < 0.4),) if i % with_examples_every == 0 else ()
        cluster = {"a": rng.random(), "b": rng.random()}
        out.append(
            UserUpdate(f"u{i}", i * 1000, "final", "eof", None, (), {}, features=pack_rows(rows), cluster_features=cluster, learn_cluster=True, examples=examples)
        )
    return out


@pytest.mark.parametrize(
    ("every", "slice_"), [(10**9, 2048), (10**9, 40), (50, 2048), (7, 2048)], ids=["one run", "one run in slices", "runs between examples", "short runs"]
)
def test_a_batch_gives_the_records_and_state_of_its_updates_one_by_one(every: int, slice_: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_scoring, "_SLICE", slice_)
    batched, rng = _trained(("churn", "propensity"), 0)
    single, _ = _trained(("churn", "propensity"), 0)
    updates = _updates(rng, 300, with_examples_every=every)
    copies = [dataclasses.replace(u) for u in updates]
    out, _ = batched.on_batch(updates)
    expected = [r for u in copies for r in single.on_item(u)[0]]
    assert [r.scores for r in out] == [r.scores for r in expected]
    assert all("churn_risk" in r.scores for r in out)
    assert encode_state(batched.state) == encode_state(single.state)


def test_a_run_shorter_than_the_threshold_or_with_the_stacks_on_is_scored_one_by_one() -> None:
    from operators.batch_scoring import scores_of_run

    logic, rng = _trained(("churn",), 0)
    assert scores_of_run(logic.scorer, logic.state, _updates(rng, TOGETHER - 1, with_examples_every=10**9)) == {}
    assert len(scores_of_run(logic.scorer, logic.state, _updates(rng, TOGETHER, with_examples_every=10**9))) == TOGETHER
    stacked = ModelConfig(**{**CFG.__dict__, "stack": True}).build(None)
    assert not can_score(stacked.scorer, stacked.state)


@pytest.mark.parametrize("name", ["churn", "propensity"])
def test_the_linear_predict_gives_rivers_float_with_or_without_the_weights(name: str) -> None:
    from operators.batch_scoring import INPUT_KEYS
    from operators.model_scoring import predict

    logic, rng = _trained(("churn", "propensity"), 0)
    task = logic.state.tasks[name]
    linear = logic.scorer.linear(name, task)
    assert linear is not None
    for _ in range(2000):
        x = [rng.gauss(0, 2) for _ in INPUT_KEYS]
        expected = task.predict(dict(zip(INPUT_KEYS, x, strict=True)))
        assert predict(task, linear, x) == expected
        assert predict(task, None, x) == expected
    # Taken again once the model has learned more (its weights moved).
    _learn(logic, rng, (name,), 5)
    assert logic.scorer.linear(name, task) != linear
