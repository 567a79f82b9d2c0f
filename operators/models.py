"""Online models: purchase propensity, churn risk and behavioural clusters.

Where the models live: in one global keyed step (key ``models``) between the
per-user journey step and the audience step. A model that learns from
everyone needs every user's examples in one place; per-user models would be
tiny but would learn from a handful of examples each. Only the updates that
matter reach this step (a session closed, the cart changed, a purchase, a
label resolved, a segment changed, a daily rescore), about a fifth of the
events, so the one worker that holds it is not the bottleneck; everything per
user still spreads over all workers. Its state (River objects, a few KB) is
snapshotted as pickled bytes with bytewax recovery, so a restart resumes with
the learned models and gives the same scores as an uninterrupted run.

Honest quality, measured online: every labelled example is first scored by
the current model, then learned (progressive validation). That feeds a ROC
AUC per task and an ADWIN drift detector on the absolute error.

The state can be exported (``models.bin`` next to a replay's outputs) and
loaded as the starting point of another run (``[models] warm_start``), so a
backfill warms up the models the live worker starts with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic
from river import drift, linear_model, metrics, optim, preprocessing

from journeyflow.errors import ConfigError
from journeyflow.metrics import MODEL_AUC, MODEL_DRIFTS, MODEL_SCORE
from journeyflow.records import ModelReport, UserUpdate
from operators.clusters import Clusters
from operators.features import unpack
from state.serde import decode_state, encode_state

__all__ = ["ModelConfig", "Task", "ModelState", "ModelLogic", "TASKS", "load_models"]

log = logging.getLogger(__name__)

#: Task name -> the score it produces in the profile.
TASKS = {"propensity": "purchase_propensity", "churn": "churn_risk"}

#: Thresholds of River's streaming ROC AUC: its cost per example grows with
#: them (about 0.5 microseconds each here); 20 keeps it within 0.01 of exact.
AUC_THRESHOLDS = 20


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters (passed to River unchanged) and where to warm-start from."""

    learning_rates: dict[str, float]
    """Task name -> SGD learning rate."""
    clusters: int
    cluster_halflife: float
    seed: int
    min_examples: int = 0
    """A model publishes no score until it has learned from this many examples."""
    warm_start: ModelState | None = None
    """Models to start from when there is no snapshot (see :func:`load_models`)."""

    def new_state(self) -> ModelState:
        """Return untrained models."""
        return ModelState(
            scaler=preprocessing.StandardScaler(),
            tasks={name: Task.new(self.learning_rates[name]) for name in TASKS},
            clusters=Clusters(k=self.clusters, halflife=self.cluster_halflife, seed=self.seed),
        )

    def build(self, resume_state: bytes | None) -> ModelLogic:
        """Return the logic, resumed from a snapshot, warm-started, or new."""
        if resume_state is not None:
            state = decode_state(resume_state, ModelState)
        elif self.warm_start is not None:
            # A copy: the configuration stays as loaded if the flow is built again.
            state = decode_state(encode_state(self.warm_start), ModelState)
        else:
            state = self.new_state()
        return ModelLogic(state, self.min_examples)


@dataclass
class Task:
    """One online classifier and its honest, online quality figures.

    It sees features already scaled by the models' shared
    :class:`~river.preprocessing.StandardScaler`: both tasks read the same
    features, so one scaler serves both (``StandardScaler | LogisticRegression``
    with the scaler factored out, one transform per score instead of two).
    """

    model: linear_model.LogisticRegression
    auc: metrics.ROCAUC = field(default_factory=lambda: metrics.ROCAUC(n_thresholds=AUC_THRESHOLDS))
    detector: drift.ADWIN = field(default_factory=drift.ADWIN)
    examples: int = 0
    positives: int = 0
    drifts: int = 0
    last_drift_ms: int | None = None

    @classmethod
    def new(cls, learning_rate: float) -> Task:
        """Return a logistic regression trained by plain SGD, River's standard starting point."""
        return cls(model=linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate)))

    def predict(self, x: dict[str, float]) -> float:
        """Return the probability of the positive label."""
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def learn(self, name: str, x: dict[str, float], y: bool, ts_ms: int) -> None:
        """Score ``x`` first (progressive validation), then learn from it."""
        p = self.predict(x)
        self.auc.update(y, p)
        self.detector.update(abs(float(y) - p))
        if self.detector.drift_detected:
            self.drifts += 1
            self.last_drift_ms = ts_ms
            MODEL_DRIFTS.labels(model=name).inc()
        self.model.learn_one(x, y)
        self.examples += 1
        self.positives += int(y)

    def report(self) -> dict[str, Any]:
        """Return the task's quality figures."""
        return {
            "examples": self.examples,
            "positive_share": round(self.positives / self.examples, 4) if self.examples else None,
            # AUC needs both labels; until then there is no honest figure.
            "progressive_auc": round(float(self.auc.get()), 4)
            if 0 < self.positives < self.examples
            else None,
            "drifts": self.drifts,
            "last_drift_ms": self.last_drift_ms,
        }


@dataclass
class ModelState:
    """Everything the models step keeps (pickled into snapshots and exports)."""

    scaler: preprocessing.StandardScaler
    tasks: dict[str, Task]
    clusters: Clusters
    version: int = 2
    scored: int = 0

    @property
    def model_version(self) -> str:
        """Return a label that changes whenever the models learn."""
        learned = sum(t.examples for t in self.tasks.values()) + self.clusters.learned
        return f"m{learned}"


class ModelLogic(StatefulLogic[UserUpdate, Any, bytes]):
    """Learn from labelled examples and score users; one instance for everyone."""

    def __init__(self, state: ModelState, min_examples: int = 0) -> None:
        self.state = state
        self.min_examples = min_examples

    def on_item(self, value: UserUpdate) -> tuple[Iterable[Any], bool]:
        state = self.state
        tasks = state.tasks
        scaler = state.scaler
        for example in value.examples:
            x = unpack(example.features)
            scaler.learn_one(x)
            task = tasks[example.task]
            task.learn(example.task, scaler.transform_one(x), example.label, example.ts_ms)
            if 0 < task.positives < task.examples:
                MODEL_AUC.labels(model=example.task).set(task.auc.get())
        if value.features is None and value.cluster_features is None:
            return [value], StatefulLogic.RETAIN
        scores: dict[str, Any] = {}
        if value.features is not None:
            x = scaler.transform_one(value.features)
            for name, score in TASKS.items():
                task = tasks[name]
                if task.examples < self.min_examples:
                    # An untrained model's scores are noise: publishing them
                    # would move users in and out of at_risk for nothing.
                    continue
                probability = task.predict(x)
                scores[score] = round(probability, 4)
                MODEL_SCORE.labels(model=name).observe(probability)
            state.scored += 1
        if value.cluster_features is not None:
            found = self.state.clusters.learn_predict(value.cluster_features, learn=value.learn_cluster)
            if found is not None:
                scores["cluster"] = found
        scores["model_version"] = self.state.model_version
        value.scores = scores
        return [value], StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        return [self.report(with_state=True)], StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def report(self, *, with_state: bool = False) -> ModelReport:
        """Return the models' quality figures and clusters (and their state, to export)."""
        state = self.state
        silhouette = state.clusters.silhouette()
        return ModelReport(
            model_version=state.model_version,
            tasks={name: task.report() for name, task in state.tasks.items()},
            clusters=state.clusters.describe(),
            silhouette=None if silhouette is None else round(silhouette, 4),
            scored=state.scored,
            state=encode_state(state) if with_state else None,
        )


def load_models(path: Path) -> ModelState:
    """Return the model state exported to ``path`` (``models.bin``)."""
    try:
        data = path.read_bytes()
    except OSError as ex:
        msg = f"models.warm_start {str(path)!r} cannot be read: {ex.strerror}"
        raise ConfigError(msg) from ex
    return decode_state(data, ModelState)
