"""One online classifier of a one-interval outcome (a week), and its honest, online quality figures.

The models step (:mod:`operators.models`) keeps one per task. Each example
is scored before it is learned (progressive validation), next to the
prior's chance for it: their log-losses, decayed over about the last
``LOSS_MEMORY`` examples, give the trust between the two (a Bayesian average
of two models with forgetting). The same scoring feeds a ROC AUC and an
ADWIN drift detector on the absolute error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import drift, linear_model, metrics, optim

from journeyflow.events import format_ts
from journeyflow.metrics import MODEL_DRIFTS
from operators.odds import log_loss, shares

__all__ = ["AUC_POINTS_KEPT", "AUC_POINT_MS", "AUC_THRESHOLDS", "LOSS_MEMORY", "MIXES", "Task"]

#: Thresholds of River's streaming ROC AUC: its cost per example grows with
#: them (about 0.5 microseconds each here); 20 keeps it within 0.01 of exact.
AUC_THRESHOLDS = 20

#: Examples the trust between the learned model and the prior remembers
#: (the decay of their log-losses); a few weeks of snapshots of a small shop.
LOSS_MEMORY = 1000
_DECAY = 1.0 - 1.0 / LOSS_MEMORY

#: The learned model's share in each mixture of it and the prior that is a
#: candidate of the average next to the two (see :meth:`Task.shares`): where
#: two close candidates each predict some examples better, a mixture often
#: predicts better than either, and the average of the two alone is all or
#: nothing between them.
MIXES = (0.25, 0.5, 0.75)

#: Event time between two points of a task's AUC history (the report's "AUC
#: over time"), and the most points kept: past that, every other one is dropped,
#: so a long-lived worker's history stays bounded and still spans its life.
AUC_POINT_MS = 86_400_000
AUC_POINTS_KEPT = 400


@dataclass
class Task:
    """One online classifier of a one-interval outcome, and its honest, online quality figures.

    It sees features already scaled by the models' shared
    :class:`~river.preprocessing.StandardScaler` (both tasks read the same
    features, so one scaler serves both), plus the prior's chances.
    """

    model: linear_model.LogisticRegression
    auc: metrics.ROCAUC = field(default_factory=lambda: metrics.ROCAUC(n_thresholds=AUC_THRESHOLDS))
    prior_auc: metrics.ROCAUC = field(default_factory=lambda: metrics.ROCAUC(n_thresholds=AUC_THRESHOLDS))
    detector: drift.ADWIN = field(default_factory=drift.ADWIN)
    examples: int = 0
    positives: int = 0
    drifts: int = 0
    last_drift_ms: int | None = None
    loss: float = 0.0
    """Decayed log-loss of the learned model on examples before learning them."""
    prior_loss: float = 0.0
    """The same for the prior."""
    mix_losses: list[float] = field(default_factory=lambda: [0.0] * len(MIXES))
    """The same for each mixture of the two (:data:`MIXES`); empty for a task whose blend has no mixtures (nothing judged)."""
    auc_history: list[tuple[int, float]] = field(default_factory=list)
    """``(ts_ms, progressive AUC)`` at most once per :data:`AUC_POINT_MS` of the learned examples' time, once both labels were seen."""

    @classmethod
    def new(cls, learning_rate: float, *, mixtures: bool = True) -> Task:
        """Return a logistic regression trained by plain SGD, River's standard starting point.

        ``mixtures``: whether the task's blend weighs the mixtures of the
        learned model and the prior (:meth:`shares`), so that they are judged.
        """
        model = linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate), intercept_lr=learning_rate)
        return cls(model=model, mix_losses=[0.0] * len(MIXES) if mixtures else [])

    def predict(self, x: dict[str, float]) -> float:
        """Return the probability of the positive label."""
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def learn(self, name: str, x: dict[str, float], y: bool, ts_ms: int, prior: float) -> None:
        """Score ``x`` first (progressive validation, next to the prior's ``prior``), then learn it."""
        p = self.predict(x)
        self.auc.update(y, p)
        self.prior_auc.update(y, prior)
        self.loss = self.loss * _DECAY + log_loss(p, y)
        self.prior_loss = self.prior_loss * _DECAY + log_loss(prior, y)
        mix = self.mix_losses
        for i, a in enumerate(MIXES[: len(mix)]):
            mix[i] = mix[i] * _DECAY + log_loss(a * p + (1.0 - a) * prior, y)
        self.detector.update(abs(float(y) - p))
        if self.detector.drift_detected:
            self.drifts += 1
            self.last_drift_ms = ts_ms
            MODEL_DRIFTS.labels(model=name).inc()
        self.model.learn_one(x, y)
        self.examples += 1
        self.positives += int(y)
        history = self.auc_history
        # Examples come from a shuffle buffer, out of time order: a point only ever moves forward.
        if 0 < self.positives < self.examples and (not history or ts_ms >= history[-1][0] + AUC_POINT_MS):
            history.append((ts_ms, float(self.auc.get())))
            if len(history) > AUC_POINTS_KEPT:
                del history[1::2]

    def shares(self, min_examples: int) -> tuple[float, float, tuple[float, ...]]:
        """Return the published blend's weights of the learned model, the prior and each mixture of the two (:data:`MIXES`).

        A Bayesian average of the candidates by their decayed log-losses on
        examples scored before they were learned (the learned model and the
        mixtures not candidates before ``min_examples``): a mixture holds
        weight only where it has predicted the interval better than both. The
        prior's weight is what the others leave, so with the mixtures' at 0 it
        is ``1 - trust``, as in the two-model trust. A task without mixtures
        (``mix_losses`` empty) gives an empty tuple for them.
        """
        if self.examples < max(1, min_examples):
            return 0.0, 1.0, (0.0,) * len(self.mix_losses)
        weights = shares([self.loss, self.prior_loss, *self.mix_losses])
        mixed = tuple(weights[2:])
        return weights[0], max(0.0, 1.0 - weights[0] - sum(mixed)), mixed

    def trust(self, min_examples: int) -> float:
        """Return the learned model's weight against the prior (0 until ``min_examples``): directly and through the mixtures."""
        learned, _, mixed = self.shares(min_examples)
        return learned + sum(a * w for a, w in zip(MIXES[: len(mixed)], mixed, strict=True))

    def report(self, min_examples: int) -> dict[str, Any]:
        """Return the task's quality figures."""
        both = 0 < self.positives < self.examples
        return {
            "examples": self.examples,
            "positive_share": round(self.positives / self.examples, 4) if self.examples else None,
            # AUC needs both labels; until then there is no honest figure.
            "progressive_auc": round(float(self.auc.get()), 4) if both else None,
            "prior_progressive_auc": round(float(self.prior_auc.get()), 4) if both else None,
            "trust": round(self.trust(min_examples), 4),
            "drifts": self.drifts,
            "last_drift_ms": self.last_drift_ms,
            "auc_over_time": [{"ts": format_ts(ts), "auc": round(auc, 4)} for ts, auc in self.auc_history],
        }
