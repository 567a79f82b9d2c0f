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
  It is never below the life table of silences
  (:mod:`operators.silence`): the chance of no return by weeks already
  silent, counted from the same labels, chained the same way.
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
log-losses, decayed over about the last ``LOSS_MEMORY`` examples (:mod:`operators.weekly`), weigh the
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
from river import preprocessing

from journeyflow.errors import ConfigError
from journeyflow.metrics import MODEL_AUC, MODEL_SCORE
from journeyflow.records import ModelReport
from journeyflow.step_records import UserUpdate
from operators import bgnbd
from operators.bgnbd import OnlinePrior
from operators.clusters import Clusters
from operators.features import (
    BG_AGE,
    BG_PURCHASES_TX,
    BG_PURCHASES_X,
    BG_SESSIONS_TX,
    BG_SESSIONS_X,
    CLASSIFIER_FEATURES,
    DAYS_SINCE_LAST_SEEN,
    TIMED,
    horizon_weights,
    unpack,
    unpack_rows,
)
from operators.odds import clip, logit, sigmoid
from operators.silence import AGE_BANDS, SilenceCurve
from operators.weekly import Task
from state.serde import decode_state, encode_state

__all__ = ["ModelConfig", "Task", "ModelState", "ModelLogic", "TASKS", "load_models"]

log = logging.getLogger(__name__)

#: Task name -> the score it produces in the profile.
TASKS = {"propensity": "purchase_propensity", "churn": "churn_risk"}

_DAY_MS = 86_400_000

#: One-interval examples wait in a shuffle buffer of this size before they
#: are learned: they resolve in bursts (every silent user's at once when time
#: passes), and SGD fed a burst of one label drifts with it.
_SHUFFLE = 1000


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
        if not hasattr(state, "silence"):
            # Exported before the silence curve existed: it counts from now on.
            state.silence = SilenceCurve()
        elif not hasattr(state.silence, "start_ms"):
            # Exported before the young rows existed: the all-ages counts go on, the rows count from now on.
            state.silence = SilenceCurve(examples=state.silence.examples, stayed=state.silence.stayed)
        return ModelLogic(state, self)


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
    silence: SilenceCurve = field(default_factory=SilenceCurve)
    """The chance of no return by weeks already silent: the floor of ``churn_risk``."""
    version: int = 4
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
        self._horizon_days = {name: h / _DAY_MS for name, h in cfg.horizons_ms.items()}
        # Derived, never pickled: the scaler's figures as scoring reads them (see _scaled).
        self._scaled_version: tuple[int, int] | None = None
        self._scaled_stats: list[tuple[str, float, float]] = []
        # The score histograms' children, looked up once (a labels() call per score costs more than observe()).
        self._observe = {name: MODEL_SCORE.labels(model=name).observe for name in TASKS}

    def _inputs(self, v: dict[str, float], *, learn: bool) -> tuple[dict[str, float], float, float]:
        """Return the learned models' input for vector ``v`` and the priors' one-interval chances."""
        scaler = self.state.scaler
        raw = {name: v[name] for name in CLASSIFIER_FEATURES}
        if learn:
            scaler.learn_one(raw)
        x = scaler.transform_one(raw)
        quiet, no_buy = _prior_chances(self.state.priors, v, self._interval_days)
        x["prior_quiet"] = logit(quiet) / 4.0
        x["prior_no_purchase"] = logit(no_buy) / 4.0
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
                state.silence.learn(math.expm1(v["days_since_last_seen"]), self._interval_days, example.label, age, example.ts_ms)
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
            scores.update(self._score(value.features, value.ts_ms))
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

    def _scaled(self) -> list[tuple[str, float, float]]:
        """Return ``(feature, mean, standard deviation)`` of the shared scaler, 0.0 for a feature without variance.

        What ``transform_one`` reads, taken once per state of the scaler (it
        changes only when an example is learned) instead of once per row:
        ``(x - mean) / sd`` is the same expression, so the same values. The
        look-ups are made in ``transform_one``'s order, a variance before its
        mean and the mean only for a variance, so a scaler that has learned
        nothing gains the same default entries (its pickled state is unchanged).
        """
        scaler = self.state.scaler
        version = (id(scaler), scaler.counts.get(CLASSIFIER_FEATURES[0], 0))
        if version != self._scaled_version:
            means, vars_ = scaler.means, scaler.vars
            stats = []
            for name in CLASSIFIER_FEATURES:
                v = vars_[name]
                stats.append((name, means[name], v**0.5) if v else (name, 0.0, 0.0))
            self._scaled_stats = stats
            self._scaled_version = version
        return self._scaled_stats

    def _row_input(
        self, stats: list[tuple[str, float, float]], row: tuple[float, ...], quiet: float, no_buy: float, first: dict[str, float] | None = None
    ) -> dict[str, float]:
        """Return what :meth:`_inputs` returns for ``row`` (unpacked), from the scaler's ``stats`` and the prior's chances.

        With ``first``, the input of an earlier row of the same score: the
        steady features (:data:`~operators.features.STEADY_FEATURES`, the same
        in every row) are copied from it, in the same key order.
        """
        if first is None:
            x = {name: (row[i] - mean) / sd if sd else 0.0 for i, (name, mean, sd) in enumerate(stats)}
        else:
            x = first.copy()
            for i in TIMED:
                name, mean, sd = stats[i]
                x[name] = (row[i] - mean) / sd if sd else 0.0
        x["prior_quiet"] = logit(quiet) / 4.0
        x["prior_no_purchase"] = logit(no_buy) / 4.0
        return x

    def _score(self, packed: bytes, now_ms: int) -> dict[str, float]:
        """Return both scores from the rows now and along the silent path (see the module docstring).

        ``packed`` holds :func:`operators.features.scoring_vectors`' rows. The
        learned models are asked only for a task they have a say in (trust
        above 0): with none, the published score is the prior's alone, the
        same value the blend ``0 * learned + 1 * prior`` gives.
        """
        state = self.state
        tasks = state.tasks
        rows = unpack_rows(packed)
        now = rows[0]
        stats = self._scaled()
        s = state.priors["sessions"].params or bgnbd.BgNbd()
        b = state.priors["purchases"].params or bgnbd.BgNbd()
        interval = self._interval_days
        trust = {name: tasks[name].trust(self.min_examples) for name in TASKS}
        age, s_x, s_tx = now[BG_AGE], now[BG_SESSIONS_X], now[BG_SESSIONS_TX]
        b_x, b_tx = now[BG_PURCHASES_X], now[BG_PURCHASES_TX]
        prior = {
            "churn": bgnbd.p_none(s, s_x, s_tx, age, self._horizon_days["churn"]),
            "propensity": 1.0 - bgnbd.p_none(b, b_x, b_tx, age, self._horizon_days["propensity"]),
        }
        published = dict(prior)
        if trust["churn"] or trust["propensity"]:
            x_now = None
            if trust["churn"]:
                churn = tasks["churn"]
                log_quiet = 0.0
                for weight, row in zip(self._weights["churn"], rows, strict=False):
                    quiet = bgnbd.p_none(s, row[BG_SESSIONS_X], row[BG_SESSIONS_TX], row[BG_AGE], interval)
                    no_buy = bgnbd.p_none(b, row[BG_PURCHASES_X], row[BG_PURCHASES_TX], row[BG_AGE], interval)
                    x = self._row_input(stats, row, quiet, no_buy, x_now)
                    if x_now is None:
                        x_now, week_no_buy = x, no_buy
                    log_quiet += weight * math.log(clip(churn.predict(x)))
                t = trust["churn"]
                published["churn"] = t * math.exp(log_quiet) + (1.0 - t) * prior["churn"]
            if trust["propensity"]:
                if x_now is None:
                    quiet = bgnbd.p_none(s, s_x, s_tx, age, interval)
                    week_no_buy = bgnbd.p_none(b, b_x, b_tx, age, interval)
                    x_now = self._row_input(stats, now, quiet, week_no_buy)
                # The learned model's odds of a purchase within the next interval,
                # relative to the prior's, carried over to the prior's horizon odds.
                shift = logit(tasks["propensity"].predict(x_now)) - logit(1.0 - week_no_buy)
                t = trust["propensity"]
                learned = sigmoid(logit(prior["propensity"]) + shift)
                published["propensity"] = t * learned + (1.0 - t) * prior["propensity"]
        # Never below what the silence so far says alone (operators.silence):
        # the learned chain extrapolates where examples are few.
        floor = state.silence.p_silent(math.expm1(now[DAYS_SINCE_LAST_SEEN]), interval, self._weights["churn"], age, now_ms)
        if floor is not None:
            published["churn"] = max(published["churn"], floor)
        # A purchase needs a return: never more likely than any activity at all.
        published["propensity"] = min(published["propensity"], 1.0 - published["churn"])
        scores = {}
        for name, score in TASKS.items():
            scores[score] = round(published[name], 4)
            self._observe[name](published[name])
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
        curve = state.silence
        # Chance of no return in the next interval by intervals already silent (None: too few examples).
        tasks["churn"]["silence_curve"] = [None if (q := curve.quiet(b)) is None else round(q, 4) for b in range(len(curve.examples))]
        # The same for really new customers, by intervals of age (rows) and of silence (columns).
        tasks["churn"]["silence_young"] = [
            [None if (q := curve.young_quiet(a, b)) is None else round(q, 4) for b in range(AGE_BANDS)] for a in range(AGE_BANDS)
        ]
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
