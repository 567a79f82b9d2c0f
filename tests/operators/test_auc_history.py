"""The report's "AUC over time": each task keeps its progressive AUC as event time passes, bounded."""

from __future__ import annotations

import random

from operators.models import ModelConfig
from operators.weekly import AUC_POINT_MS, AUC_POINTS_KEPT, Task
from state.serde import encode_state

DAY = 86_400_000


def _learn(task: Task, rng: random.Random, ts_ms: int) -> None:
    x = rng.gauss(0.0, 1.0)
    task.learn("churn", {"x": x}, x + rng.gauss(0.0, 0.5) > 0.0, ts_ms, 0.5)


def test_one_point_a_day_once_both_labels_were_seen_forward_in_time_and_reported() -> None:
    task, rng = Task.new(0.05), random.Random(3)
    # Shuffled times within each day, as the shuffle buffer hands them out.
    for day in range(5):
        for ts in sorted(range(200), key=lambda _: rng.random()):
            _learn(task, rng, day * DAY + ts * 60_000)
    times = [ts for ts, _ in task.auc_history]
    assert len(times) == 5 and times == sorted(times)
    assert all(b - a >= AUC_POINT_MS for a, b in zip(times, times[1:], strict=False))
    assert task.auc_history[-1][1] > 0.8  # the label follows x: the learned model ranks it
    reported = task.report(0)["auc_over_time"]
    assert reported[0]["ts"].startswith("1970-01-01T") and reported[-1]["auc"] == round(task.auc_history[-1][1], 4)


def test_no_point_before_both_labels_were_seen() -> None:
    task = Task.new(0.05)
    for day in range(3):
        task.learn("churn", {"x": 1.0}, True, day * DAY, 0.5)
    assert task.auc_history == [] and task.report(0)["auc_over_time"] == []


def test_a_long_history_stays_bounded_and_still_spans_it() -> None:
    task, rng = Task.new(0.05), random.Random(4)
    for day in range(AUC_POINTS_KEPT * 3):
        _learn(task, rng, day * DAY)
        _learn(task, rng, day * DAY + 1)
    assert len(task.auc_history) <= AUC_POINTS_KEPT
    assert task.auc_history[0][0] < 3 * DAY and task.auc_history[-1][0] > (AUC_POINTS_KEPT * 3 - 3) * DAY


def test_a_snapshot_from_before_the_history_starts_it_empty() -> None:
    cfg = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)
    logic = cfg.build(None)
    for task in logic.state.tasks.values():
        del task.__dict__["auc_history"]
    resumed = cfg.build(encode_state(logic.state))
    assert all(task.auc_history == [] for task in resumed.state.tasks.values())
