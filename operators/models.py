"""Online models: purchase propensity, churn risk and behavioural clusters.

Where the models live: in one global keyed step (key ``models``) between the
per-user journey step and the audience step. A model that learns from
everyone needs every user's examples in one place; per-user models would be
tiny but would learn from a handful of examples each. Only the updates that
matter reach this step (a session closed, the cart changed, a purchase, a
label resolved, a segment changed, a weekly rescore), so the one worker that
holds it is not the bottleneck. Its state (River objects and the prior's
sample, a few hundred KB) is snapshotted as pickled bytes with bytewax
recovery, so a restart resumes with the learned models and gives the same
scores as an uninterrupted run.

What is learned (see :mod:`operators.labels`): for each task, the chance
of the outcome within one interval (a week) from a snapshot of any known
customer, by a logistic regression (River, AdaGrad) over the profile's
features and the prior's one-interval chances. Examples wait in a small
shuffle buffer first: they resolve in bursts when time passes for many
users at once, and online learning fed one label at a time drifts with it.

From one interval to the horizon:

* ``churn_risk`` chains the intervals along the silent path
  (:func:`operators.features.scoring_vectors`): no return in the first week,
  then none in the second given the first was silent (the customer's state
  after a silent week), and so on; the chance of a silent horizon is their
  product (a discrete-time survival model).
* ``purchase_propensity`` carries the learned model's odds of a purchase in
  the next interval, relative to the prior's, over to the prior's odds of a
  purchase within the horizon. (A chain like churn's would assume the
  customer stays away meanwhile, which is wrong for the ones who come back
  and buy later: it ranked as well and calibrated worse.) It is never above
  ``1 - churn_risk``: a purchase needs a return (on a log of purchases only,
  CDNOW, that bound is what calibrates it).

The prior: two BG/NBD models (:mod:`operators.bgnbd`), over sessions and over
purchases, re-fitted from a sample of customers as snapshots arrive. Their
one-interval chances are features of the learned models, and their horizon
chances are the published scores until the learned model has
``min_examples`` examples (no score at all before their first fit).

Shrink to what works: every labelled example is scored by the learned model
and by the prior before it is learned (progressive validation). Their
log-losses, decayed over about the last ``_LOSS_MEMORY`` examples, weigh the
two like a Bayesian average of two models with forgetting: the published
score is ``trust * learned + (1 - trust) * prior``, so a learned model that
does worse than the prior on recent examples hands the score to the prior.
The same scoring feeds a ROC AUC per task and an ADWIN drift detector on
the absolute error.

The state can be exported (``models.bin`` next to a replay's outputs) and
loaded as the starting point of another run (``[models] warm_start``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic
from river import drift, linear_model, metrics, optim, preprocessing

from journeyflow.errors import ConfigError
from journeyflow.metrics import MODEL_AUC, MODEL_DRIFTS, MODEL_SCORE
from journeyflow.records import ModelReport
from journeyflow.step_records import UserUpdate
from operators import bgnbd
from operators.bgnbd import OnlinePrior
from operators.clusters import Clusters
from operators.features import CLASSIFIER_FEATURES, horizon_weights, unpack
from state.serde import decode_state, encode_state

__all__ = ["ModelConfig", "Task", "ModelState", "ModelLogic", "TASKS", "load_models"]

log = logging.getLogger(__name__)

#: Task name -> the score it produces in the profile.
TASKS = {"propensity": "purchase_propensity", "churn": "churn_risk"}

#: Thresholds of River's streaming ROC AUC: its cost per example grows with
#: them (about 0.5 microseconds each here); 20 keeps it within 0.01 of exact.
AUC_THRESHOLDS = 20

#: Examples the trust between the learned model and the prior remembers
#: (the decay of their log-losses); a few weeks of snapshots of a small shop.
_LOSS_MEMORY = 1000
_DECAY = 1.0 - 1.0 / _LOSS_MEMORY
_EPS = 1e-6
_DAY_MS = 86_400_000

#: One-interval examples wait in a shuffle buffer of this size before they
#: are learned: they resolve in bursts (every silent user's at once when time
#: passes), and SGD fed a burst of one label drifts with it.
_SHUFFLE = 1000


def _clip(p: float) -> float:
    return min(1.0 - _EPS, max(_EPS, p))


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, t))))


def _logit(p: float) -> float:
    p = _clip(p)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters (passed to River unchanged), horizons, and where to warm-start from."""

    learning_rates: dict[str, float]
    """Task name -> SGD learning rate."""
    clusters: int
    cluster_halflife: float
    seed: int
    min_examples: int = 0
    """The learned model has no say in a score until it has learned from this many examples."""
    interval_ms: int = 7 * _DAY_MS
    """The window of each example's label (see :mod:`operators.labels`)."""
    horizons_ms: dict[str, int] = field(default_factory=lambda: {"propensity": 30 * _DAY_MS, "churn": 30 * _DAY_MS})
    """Task name -> the horizon its published score looks ahead."""
    warm_start: ModelState | None = None
    """Models to start from when there is no snapshot (see :func:`load_models`)."""

    def new_state(self) -> ModelState:
        """Return untrained models."""
        return ModelState(
            scaler=preprocessing.StandardScaler(),
            tasks={name: Task.new(self.learning_rates[name]) for name in TASKS},
            clusters=Clusters(k=self.clusters, halflife=self.cluster_halflife, seed=self.seed),
            priors={"sessions": OnlinePrior(), "purchases": OnlinePrior()},
            rng=random.Random(self.seed),
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
        return ModelLogic(state, self)


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

    @classmethod
    def new(cls, learning_rate: float) -> Task:
        """Return a logistic regression trained by plain SGD, River's standard starting point."""
        return cls(model=linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate), intercept_lr=learning_rate))

    def predict(self, x: dict[str, float]) -> float:
        """Return the probability of the positive label."""
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def learn(self, name: str, x: dict[str, float], y: bool, ts_ms: int, prior: float) -> None:
        """Score ``x`` first (progressive validation, next to the prior's ``prior``), then learn it."""
        p = self.predict(x)
        self.auc.update(y, p)
        self.prior_auc.update(y, prior)
        self.loss = self.loss * _DECAY - math.log(_clip(p if y else 1.0 - p))
        self.prior_loss = self.prior_loss * _DECAY - math.log(_clip(prior if y else 1.0 - prior))
        self.detector.update(abs(float(y) - p))
        if self.detector.drift_detected:
            self.drifts += 1
            self.last_drift_ms = ts_ms
            MODEL_DRIFTS.labels(model=name).inc()
        self.model.learn_one(x, y)
        self.examples += 1
        self.positives += int(y)

    def trust(self, min_examples: int) -> float:
        """Return the learned model's weight against the prior (0 until ``min_examples``)."""
        if self.examples < max(1, min_examples):
            return 0.0
        return 1.0 / (1.0 + math.exp(max(-50.0, min(50.0, self.loss - self.prior_loss))))

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
        }


@dataclass
class ModelState:
    """Everything the models step keeps (pickled into snapshots and exports)."""

    scaler: preprocessing.StandardScaler
    tasks: dict[str, Task]
    clusters: Clusters
    priors: dict[str, OnlinePrior]
    """BG/NBD over ``sessions`` (churn) and over ``purchases`` (propensity)."""
    rng: random.Random
    """Draws from the shuffle buffer (seeded: a replay stays deterministic)."""
    buffer: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    """One-interval examples waiting to be learned: (task, features, label, ts_ms)."""
    version: int = 3
    scored: int = 0

    @property
    def model_version(self) -> str:
        """Return a label that changes whenever the models learn."""
        learned = sum(t.examples for t in self.tasks.values()) + self.clusters.learned
        return f"m{learned}"


def _prior_chances(priors: dict[str, OnlinePrior], v: dict[str, float], tau: float) -> tuple[float, float]:
    """Return the priors' (no session, no purchase) chances within ``tau`` days for vector ``v``."""
    age = v["bg_age"]
    s = priors["sessions"].params or bgnbd.BgNbd()
    b = priors["purchases"].params or bgnbd.BgNbd()
    quiet = bgnbd.p_none(s, v["bg_sessions_x"], v["bg_sessions_tx"], age, tau)
    no_buy = bgnbd.p_none(b, v["bg_purchases_x"], v["bg_purchases_tx"], age, tau)
    return quiet, no_buy


class ModelLogic(StatefulLogic[UserUpdate, Any, bytes]):
    """Learn from labelled examples and score users; one instance for everyone."""

    def __init__(self, state: ModelState, cfg: ModelConfig) -> None:
        self.state = state
        self.cfg = cfg
        self.min_examples = cfg.min_examples
        self._interval_days = cfg.interval_ms / _DAY_MS
        self._weights = {name: horizon_weights(h, cfg.interval_ms) for name, h in cfg.horizons_ms.items()}

    def _inputs(self, v: dict[str, float], *, learn: bool) -> tuple[dict[str, float], float, float]:
        """Return the learned models' input for vector ``v`` and the priors' one-interval chances."""
        scaler = self.state.scaler
        raw = {name: v[name] for name in CLASSIFIER_FEATURES}
        if learn:
            scaler.learn_one(raw)
        x = scaler.transform_one(raw)
        quiet, no_buy = _prior_chances(self.state.priors, v, self._interval_days)
        x["prior_quiet"] = _logit(quiet) / 4.0
        x["prior_no_purchase"] = _logit(no_buy) / 4.0
        return x, quiet, no_buy

    def on_item(self, value: UserUpdate) -> tuple[Iterable[Any], bool]:
        state = self.state
        if value.kind in ("erase", "opt_out", "merge"):
            for prior in state.priors.values():
                prior.forget(value.user_id)
        for example in value.examples:
            if example.task == "churn":
                # One churn example per snapshot: each snapshot is observed once.
                v = unpack(example.features)
                age = v["bg_age"]
                state.priors["sessions"].observe(value.user_id, v["bg_sessions_x"], v["bg_sessions_tx"], age)
                state.priors["purchases"].observe(value.user_id, v["bg_purchases_x"], v["bg_purchases_tx"], age)
            state.buffer.append((example.task, example.features, example.label, example.ts_ms))
            if len(state.buffer) > _SHUFFLE:
                self._learn_one()
        if value.features is None and value.cluster_features is None:
            return [value], StatefulLogic.RETAIN
        scores: dict[str, Any] = {}
        fitted = all(p.params is not None for p in state.priors.values())
        if value.features is not None and (fitted or self.min_examples == 0):
            # No score before the priors have seen enough customers to be fitted
            # once, unless asked for no warm-up at all (their starting parameters).
            scores.update(self._score(value.features))
            state.scored += 1
        if value.cluster_features is not None:
            found = state.clusters.learn_predict(value.cluster_features, learn=value.learn_cluster)
            if found is not None:
                scores["cluster"] = found
        scores["model_version"] = state.model_version
        value.scores = scores
        return [value], StatefulLogic.RETAIN

    def _learn_one(self) -> None:
        """Learn one example drawn at random from the shuffle buffer."""
        state = self.state
        buffer = state.buffer
        i = state.rng.randrange(len(buffer))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        name, packed, label, ts_ms = buffer.pop()
        x, quiet, no_buy = self._inputs(unpack(packed), learn=True)
        task = state.tasks[name]
        task.learn(name, x, label, ts_ms, quiet if name == "churn" else 1.0 - no_buy)
        if 0 < task.positives < task.examples:
            MODEL_AUC.labels(model=name).set(task.auc.get())

    def _score(self, vectors: tuple[dict[str, float], ...]) -> dict[str, float]:
        """Return both scores from the vectors now and along the silent path (see the module docstring)."""
        tasks = self.state.tasks
        priors = self.state.priors
        log_quiet = 0.0
        for weight, v in zip(self._weights["churn"], vectors, strict=False):
            x, _, _ = self._inputs(v, learn=False)
            log_quiet += weight * math.log(_clip(tasks["churn"].predict(x)))
        now = vectors[0]
        x, _, week_no_buy = self._inputs(now, learn=False)
        prior_quiet, _ = _prior_chances(priors, now, self.cfg.horizons_ms["churn"] / _DAY_MS)
        _, prior_no_buy = _prior_chances(priors, now, self.cfg.horizons_ms["propensity"] / _DAY_MS)
        # The learned model's odds of a purchase within the next interval,
        # relative to the prior's, carried over to the prior's horizon odds.
        shift = _logit(tasks["propensity"].predict(x)) - _logit(1.0 - week_no_buy)
        learned = {"churn": math.exp(log_quiet), "propensity": _sigmoid(_logit(1.0 - prior_no_buy) + shift)}
        prior = {"churn": prior_quiet, "propensity": 1.0 - prior_no_buy}
        published = {}
        for name in TASKS:
            trust = tasks[name].trust(self.min_examples)
            published[name] = trust * learned[name] + (1.0 - trust) * prior[name]
        # A purchase needs a return: never more likely than any activity at all.
        published["propensity"] = min(published["propensity"], 1.0 - published["churn"])
        scores = {}
        for name, score in TASKS.items():
            scores[score] = round(published[name], 4)
            MODEL_SCORE.labels(model=name).observe(published[name])
        return scores

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        # Nothing is left waiting in the shuffle buffer of an exported state:
        # a run warm-started from it goes on from everything learned.
        while self.state.buffer:
            self._learn_one()
        return [self.report(with_state=True)], StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def report(self, *, with_state: bool = False) -> ModelReport:
        """Return the models' quality figures, priors and clusters (and their state, to export)."""
        state = self.state
        silhouette = state.clusters.silhouette()
        tasks = {name: task.report(self.min_examples) for name, task in state.tasks.items()}
        for name, prior in (("churn", state.priors["sessions"]), ("propensity", state.priors["purchases"])):
            params = prior.params
            tasks[name]["prior"] = {
                "over": "sessions" if name == "churn" else "purchases",
                "customers": len(prior.sample),
                "fits": prior.fits,
                "params": None if params is None else {k: round(getattr(params, k), 4) for k in ("r", "alpha", "a", "b")},
            }
        return ModelReport(
            model_version=state.model_version,
            tasks=tasks,
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
