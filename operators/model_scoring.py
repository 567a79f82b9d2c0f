"""The models step's scoring path: a customer's packed rows to both published scores.

Split from :mod:`operators.models` (which learns and keeps the state): what a
score reads is the state (:class:`~operators.models.ModelState`) and the
figures derived once from the configuration, kept in a :class:`Scorer`. How
the rows chain into a horizon's chance is in the :mod:`operators.models`
docstring; this module computes it cheaply (packed rows, the scaler's figures
taken once per state of the scaler, tasks without a say skipped) and exactly:
``tests/operators/test_model_scoring.py`` checks it against the plain
computation (River's scaler and classifiers on one dict per row).

Nothing here is pickled: a :class:`Scorer` is rebuilt with its step, so a
snapshot is the same as before the split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from river.utils.math import sigmoid as river_sigmoid

from journeyflow.metrics import MODEL_SCORE
from operators import bgnbd
from operators.batch_scoring import INPUT_KEYS, learned_weights, raw_many, says
from operators.bgnbd import OnlinePrior
from operators.combiner import Combiner
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
    unpack_rows,
)
from operators.model_trust import churn_shares
from operators.odds import clip, logit, sigmoid
from operators.rounding import round_digits
from operators.weekly import MIXES

if TYPE_CHECKING:
    from river import preprocessing

    from operators.models import ModelConfig, ModelState
    from operators.weekly import Task

__all__ = ["TASKS", "DAY_MS", "SCORE_DIGITS", "Scorer", "prior_chances", "learn_input", "stack_inputs"]

#: Task name -> the score it produces in the profile.
TASKS = {"propensity": "purchase_propensity", "churn": "churn_risk"}

DAY_MS = 86_400_000

#: Decimal places of a published score. Six, not four: scores near 0 or 1
#: (propensity on a log of rare purchases) had only a few hundred distinct
#: values at four places, and the ties cost ranking (CDNOW's propensity AUC
#: 0.795 at four places, 0.800 at six, the same scores otherwise).
SCORE_DIGITS = 6

_CLASSIFIER = len(CLASSIFIER_FEATURES)
_SESSIONS_TOTAL = CLASSIFIER_FEATURES.index("sessions_total")
_PURCHASES_TOTAL = CLASSIFIER_FEATURES.index("purchases_total")
_DAYS_SINCE_PURCHASE = CLASSIFIER_FEATURES.index("days_since_last_purchase")


def stack_inputs(now: tuple[float, ...], published: dict[str, float], prior: dict[str, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the churn and propensity stacks' inputs (:mod:`operators.combiner`) for row ``now`` and the models' own scores."""
    churn = Combiner.inputs(published["churn"], prior["churn"], now[DAYS_SINCE_LAST_SEEN], now[_SESSIONS_TOTAL])
    propensity = Combiner.inputs(published["propensity"], prior["propensity"], -now[_DAYS_SINCE_PURCHASE], -now[_PURCHASES_TOTAL])
    return churn, propensity


def prior_chances(priors: dict[str, OnlinePrior], v: dict[str, float], tau: float) -> tuple[float, float]:
    """Return the priors' (no session, no purchase) chances within ``tau`` days for vector ``v``."""
    age = v["bg_age"]
    s = priors["sessions"].params or bgnbd.BgNbd()
    b = priors["purchases"].params or bgnbd.BgNbd()
    quiet = bgnbd.p_none(s, v["bg_sessions_x"], v["bg_sessions_tx"], age, tau)
    no_buy = bgnbd.p_none(b, v["bg_purchases_x"], v["bg_purchases_tx"], age, tau)
    return quiet, no_buy


def learn_input(state: ModelState, v: dict[str, float], interval_days: float, *, learn: bool) -> tuple[dict[str, float], float, float]:
    """Return the learned models' input for vector ``v`` and the priors' one-interval chances."""
    scaler = state.scaler
    raw = {name: v[name] for name in CLASSIFIER_FEATURES}
    if learn:
        scaler.learn_one(raw)
    x = scaler.transform_one(raw)
    quiet, no_buy = prior_chances(state.priors, v, interval_days)
    x["prior_quiet"] = logit(quiet) / 4.0
    x["prior_no_purchase"] = logit(no_buy) / 4.0
    return x, quiet, no_buy


def row_input(
    stats: list[tuple[str, float, float]], row: tuple[float, ...], quiet: float, no_buy: float, first: list[float] | None = None
) -> list[float]:
    """Return what :func:`learn_input` returns for ``row`` (unpacked), from the scaler's ``stats`` and the prior's chances,
    as a list of its values in :data:`~operators.batch_scoring.INPUT_KEYS` order (the order of its keys).

    With ``first``, the input of an earlier row of the same score: the
    steady features (:data:`~operators.features.STEADY_FEATURES`, the same
    in every row) are copied from it.
    """
    if first is None:
        x = [(row[i] - mean) / sd if sd else 0.0 for i, (_, mean, sd) in enumerate(stats)]
    else:
        x = first[:_CLASSIFIER]
        for i in TIMED:
            _, mean, sd = stats[i]
            x[i] = (row[i] - mean) / sd if sd else 0.0
    x.append(logit(quiet) / 4.0)
    x.append(logit(no_buy) / 4.0)
    return x


def predict(task: Task, linear: tuple[list[float], float] | None, x: list[float]) -> float:
    """Return ``task.predict`` of the input ``x`` (:func:`row_input`), the same float.

    With the model's weights in input order (``linear``, see :meth:`Scorer.linear`), summed
    feature by feature as River's ``VectorDict.dot`` sums them, then River's sigmoid; without
    (a weight missing), River itself on the input as a dict.
    """
    if linear is None:
        return task.predict(dict(zip(INPUT_KEYS, x, strict=True)))
    weights, intercept = linear
    z = 0.0
    for value, weight in zip(x, weights, strict=True):
        z += value * weight
    return float(river_sigmoid(z + intercept))


class Scorer:
    """Score customers from a :class:`~operators.models.ModelState`; one per models step, never pickled."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.min_examples = cfg.min_examples
        self.interval_days = cfg.interval_ms / DAY_MS
        self.interval_ms = cfg.interval_ms
        self.min_resolved = cfg.min_resolved
        self.stack = cfg.stack
        self.weights = {name: horizon_weights(h, cfg.interval_ms) for name, h in cfg.horizons_ms.items()}
        self.horizon_days = {name: h / DAY_MS for name, h in cfg.horizons_ms.items()}
        # Derived: the scaler's figures as scoring reads them (see scaled).
        self._scaled_version: tuple[int, int] | None = None
        self._scaled_stats: list[tuple[str, float, float]] = []
        # Derived: both blends' weights, by the judged losses they come from (see blend_weights).
        self._weights_key: tuple[object, ...] | None = None
        self._weights: tuple[tuple[float, float, float], tuple[float, float, tuple[float, ...]]] = ((0.0, 1.0, 0.0), (0.0, 1.0, ()))
        # Derived: each task's weights in input order, by (model, examples learned) (see linear).
        self._linear: dict[str, tuple[tuple[int, int], tuple[list[float], float] | None]] = {}
        # The score histograms' children, looked up once (a labels() call per score costs more than observe()).
        self._observe: dict[str, Callable[[float], None]] = {name: MODEL_SCORE.labels(model=name).observe for name in TASKS}

    def scaled(self, scaler: preprocessing.StandardScaler) -> list[tuple[str, float, float]]:
        """Return ``(feature, mean, standard deviation)`` of the shared scaler, 0.0 for a feature without variance.

        What ``transform_one`` reads, taken once per state of the scaler (it
        changes only when an example is learned) instead of once per row:
        ``(x - mean) / sd`` is the same expression, so the same values. The
        look-ups are made in ``transform_one``'s order, a variance before its
        mean and the mean only for a variance, so a scaler that has learned
        nothing gains the same default entries (its pickled state is unchanged).
        """
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

    def blend_weights(self, state: ModelState, floor_known: bool) -> tuple[tuple[float, float, float], tuple[float, float, tuple[float, ...]]]:
        """Return the churn blend's weights (:func:`~operators.model_trust.churn_shares`) and the propensity blend's
        (:meth:`~operators.weekly.Task.shares`) as of this state, taken once per state of the judged losses."""
        churn, propensity = state.tasks["churn"], state.tasks["propensity"]
        key: tuple[object, ...] = (id(churn), churn.examples, churn.loss, churn.prior_loss, state.floor_loss, floor_known, state.frozen)
        key += (id(propensity), propensity.examples, propensity.loss, propensity.prior_loss, *propensity.mix_losses)
        if key != self._weights_key:
            self._weights = (churn_shares(churn, state.floor_loss, self.min_examples, floor_known, state.frozen), propensity.shares(self.min_examples))
            self._weights_key = key
        return self._weights

    def linear(self, name: str, task: Task) -> tuple[list[float], float] | None:
        """Return the task's learned weights in input order and its intercept (None: a weight is missing), taken once per model state."""
        version = (id(task.model), task.examples)
        cached = self._linear.get(name)
        if cached is None or cached[0] != version:
            found = learned_weights(task.model)
            cached = self._linear[name] = (version, None if found is None else (found[0].tolist(), found[1]))
        return cached[1]

    def score(self, state: ModelState, packed: bytes, now_ms: int) -> dict[str, float]:
        """Return both published scores from the rows now and along the silent path (see :mod:`operators.models`).

        The models' own scores (:meth:`raw`), through each task's stack
        (:mod:`operators.combiner`) once it has a fit; a purchase never more
        likely than a return; rounded to :data:`SCORE_DIGITS` places.
        """
        rows = unpack_rows(packed)
        published, prior = self.raw(state, rows, now_ms)
        if self.stack:
            combiner = state.combiner
            combiner.refit(now_ms, self.interval_ms, self.min_resolved)
            churn_in, propensity_in = stack_inputs(rows[0], published, prior)
            published["churn"] = combiner.apply("churn", churn_in, published["churn"])
            published["propensity"] = min(combiner.apply("propensity", propensity_in, published["propensity"]), 1.0 - published["churn"])
        return self._published(published)

    def score_many(self, state: ModelState, packed: list[bytes], now_ms: list[int]) -> list[dict[str, float]]:
        """Return :meth:`score` of each customer, all from this state (the same floats: :mod:`operators.batch_scoring`).

        Only for a state :func:`~operators.batch_scoring.can_score` accepts,
        and rows of the same number for every customer.
        """
        return [self._published({"churn": churn, "propensity": propensity}) for churn, propensity in raw_many(self, state, packed, now_ms)]

    def _published(self, published: dict[str, float]) -> dict[str, float]:
        """Return the profile's scores from the models' final ``published`` ones (rounded), and observe them."""
        scores = {}
        for name, score in TASKS.items():
            # (round()'s very float without its decimal conversion: operators.rounding)
            scores[score] = round_digits(published[name], SCORE_DIGITS)
            self._observe[name](published[name])
        return scores

    def raw(self, state: ModelState, rows: list[tuple[float, ...]], now_ms: int) -> tuple[dict[str, float], dict[str, float]]:
        """Return the models' own scores (before the stacks) and the prior's, per task, from the rows now and along the silent path.

        The learned models are asked only for a task they have a say in
        (trust above 0): with none, the score is the prior's alone, the
        same value the blend ``0 * learned + 1 * prior`` gives.
        """
        tasks = state.tasks
        now = rows[0]
        stats = self.scaled(state.scaler)
        s = state.priors["sessions"].params or bgnbd.BgNbd()
        b = state.priors["purchases"].params or bgnbd.BgNbd()
        interval = self.interval_days
        age, s_x, s_tx = now[BG_AGE], now[BG_SESSIONS_X], now[BG_SESSIONS_TX]
        # The silence so far alone (operators.silence): a candidate of the churn blend and its floor.
        floor = state.silence.p_silent(math.expm1(now[DAYS_SINCE_LAST_SEEN]), interval, self.weights["churn"], age, now_ms)
        w_churn, w_propensity = self.blend_weights(state, floor is not None)
        say = says(w_churn, w_propensity)
        b_x, b_tx = now[BG_PURCHASES_X], now[BG_PURCHASES_TX]
        prior = {
            "churn": bgnbd.p_none(s, s_x, s_tx, age, self.horizon_days["churn"]),
            "propensity": 1.0 - bgnbd.p_none(b, b_x, b_tx, age, self.horizon_days["propensity"]),
        }
        published = dict(prior)
        if w_churn[1] != 1.0:
            published["churn"] = w_churn[1] * prior["churn"]
        if say["churn"] or say["propensity"]:
            x_now = None
            if say["churn"]:
                churn = tasks["churn"]
                linear = self.linear("churn", churn)
                log_quiet = 0.0
                for weight, row in zip(self.weights["churn"], rows, strict=False):
                    quiet = bgnbd.p_none(s, row[BG_SESSIONS_X], row[BG_SESSIONS_TX], row[BG_AGE], interval)
                    no_buy = bgnbd.p_none(b, row[BG_PURCHASES_X], row[BG_PURCHASES_TX], row[BG_AGE], interval)
                    x = row_input(stats, row, quiet, no_buy, x_now)
                    if x_now is None:
                        x_now, week_no_buy = x, no_buy
                    log_quiet += weight * math.log(clip(predict(churn, linear, x)))
                published["churn"] = w_churn[0] * math.exp(log_quiet) + published["churn"]
            if say["propensity"]:
                if x_now is None:
                    quiet = bgnbd.p_none(s, s_x, s_tx, age, interval)
                    week_no_buy = bgnbd.p_none(b, b_x, b_tx, age, interval)
                    x_now = row_input(stats, now, quiet, week_no_buy)
                # The learned model's odds of a purchase within the next interval (and each
                # mixture's), relative to the prior's, carried over to the prior's horizon odds.
                propensity = tasks["propensity"]
                p = predict(propensity, self.linear("propensity", propensity), x_now)
                q = 1.0 - week_no_buy
                base = logit(prior["propensity"])
                shift = logit(p) - logit(q)
                t, w_prior, w_mixed = w_propensity
                blend = t * sigmoid(base + shift)
                for a, w in zip(MIXES, w_mixed, strict=True):
                    if w:
                        blend += w * sigmoid(base + (logit(a * p + (1.0 - a) * q) - logit(q)))
                published["propensity"] = blend + w_prior * prior["propensity"]
        if floor is not None:
            if w_churn[2]:
                published["churn"] += w_churn[2] * floor
            # Never below it: the learned chain extrapolates where examples are few.
            published["churn"] = max(published["churn"], floor)
        # A purchase needs a return: never more likely than any activity at all.
        published["propensity"] = min(published["propensity"], 1.0 - published["churn"])
        return published, prior
