"""Score many customers at once from one model state: the same floats as one at a time.

The models step's end of input (and any run of updates that teach the models
nothing) scores many customers' packed rows from one frozen
:class:`~operators.models.ModelState`. :meth:`operators.model_scoring.Scorer.raw`
does it one customer at a time, in Python, a dictionary per row; this module
does the same computation over arrays, one row position at a time, and gives
the same floats, bit for bit (``tests/operators/test_batch_scoring.py`` holds
it to :meth:`~operators.model_scoring.Scorer.raw`):

* numpy is used only for the four arithmetic operations and comparisons, which
  IEEE 754 rounds exactly whatever the vector width, each expression kept in
  the scalar code's order of operations;
* a logarithm or an exponential is taken by :mod:`math` element by element
  (numpy's own vectorised ``log``/``exp`` may differ from the C library's in
  the last bit on this machine's AVX-512), and the clipped odds through
  :mod:`operators.odds` itself;
* a logistic regression's dot product is summed feature by feature in the
  input's key order, as River's ``VectorDict.dot`` sums it, and its sigmoid is
  River's own, element by element;
* the silence floor is asked per customer (:meth:`operators.silence.SilenceCurve.p_silent`).

A run whose learned model lacks a weight for a feature, or with the stacks on
(:mod:`operators.combiner` refits while it scores), is not scored here: the
caller scores it one at a time (:func:`can_score`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from river.utils.math import sigmoid as river_sigmoid

from operators import bgnbd
from operators.features import (
    BG_AGE,
    BG_PURCHASES_TX,
    BG_PURCHASES_X,
    BG_SESSIONS_TX,
    BG_SESSIONS_X,
    CLASSIFIER_FEATURES,
    DAYS_SINCE_LAST_SEEN,
    LAYOUT,
    TIMED,
)
from operators.odds import clip, logit, sigmoid
from operators.weekly import MIXES

if TYPE_CHECKING:
    from river import linear_model

    from operators.model_scoring import Scorer
    from journeyflow.step_records import UserUpdate
    from operators.models import ModelState

__all__ = ["INPUT_KEYS", "TOGETHER", "says", "can_score", "learned_weights", "p_none_many", "raw_many", "scores_of_run", "warmed_up"]

#: The learned models' input keys in the order :func:`operators.model_scoring.row_input` makes them.
INPUT_KEYS = (*CLASSIFIER_FEATURES, "prior_quiet", "prior_no_purchase")

#: A run shorter than this is scored one at a time: the arrays' fixed cost per run (a few
#: hundred numpy calls) is worth it from about this many customers.
TOGETHER = 32

#: Customers scored per set of arrays (a run longer than this is scored in slices).
_SLICE = 2048

_FEATURES = len(CLASSIFIER_FEATURES)
_STEADY = np.array([i for i in range(_FEATURES) if i not in TIMED], dtype=np.intp)


def _each(f: Callable[[float], float], a: np.ndarray) -> np.ndarray:
    """Return ``f`` of every element of the 1-d array ``a`` (a Python float function: the scalar path's own)."""
    return np.fromiter(map(f, a.tolist()), dtype=np.float64, count=a.size)


def learned_weights(model: linear_model.LogisticRegression) -> tuple[np.ndarray, float] | None:
    """Return the model's weights in :data:`INPUT_KEYS` order and its intercept, or None if one is missing."""
    weights = model._weights
    if len(weights) != len(INPUT_KEYS) or any(key not in weights for key in INPUT_KEYS):
        return None
    return np.array([weights[key] for key in INPUT_KEYS], dtype=np.float64), float(model.intercept)


def says(w_churn: tuple[float, float, float], w_propensity: tuple[float, float, tuple[float, ...]]) -> dict[str, float]:
    """Return each task's learned model's weight in its blend (propensity: directly and through the mixtures): 0, it is not asked."""
    return {"churn": w_churn[0], "propensity": w_propensity[0] + sum(w_propensity[2])}


def can_score(scorer: Scorer, state: ModelState) -> bool:
    """Return whether :func:`raw_many` scores exactly as :meth:`Scorer.raw` for this state."""
    if scorer.stack:
        return False
    say = says(*scorer.blend_weights(state, state.silence.curve() is not None))
    return not any(say[name] and learned_weights(task.model) is None for name, task in state.tasks.items())


def p_none_many(m: bgnbd.BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, tau: float) -> np.ndarray:
    """Return :func:`operators.bgnbd.p_none` of every customer, the same floats.

    >>> m = bgnbd.BgNbd(0.243, 4.414, 0.793, 2.426)
    >>> got = p_none_many(m, np.array([0.0, 2.0]), np.array([0.0, 30.0]), np.array([38.86, 38.86]), 39.0)
    >>> got.tolist() == [bgnbd.p_none(m, 0.0, 0.0, 38.86, 39.0), bgnbd.p_none(m, 2.0, 30.0, 38.86, 39.0)]
    True
    """
    r, alpha = m.r, m.alpha
    odds = np.zeros_like(x)
    alive_path = x > 0
    if alive_path.any():
        xs = x[alive_path]
        exponent = _each(math.log, m.a / (m.b + xs - 1)) + (r + xs) * _each(
            math.log, (alpha + T[alive_path]) / (alpha + t_x[alive_path])
        )
        # np.fmin, not np.minimum: like Python's min(700.0, e), never NaN from the bound.
        odds[alive_path] = _each(math.exp, np.fmin(700.0, exponent))
    alive = 1.0 / (1.0 + odds)
    quiet = _each(math.exp, (r + x) * _each(math.log, (alpha + T) / (alpha + T + tau)))
    return 1.0 - alive * (1.0 - quiet)


def _predict(model: linear_model.LogisticRegression, x: list[np.ndarray]) -> np.ndarray:
    """Return :meth:`operators.weekly.Task.predict` of every row of the columns ``x`` (in :data:`INPUT_KEYS` order)."""
    found = learned_weights(model)
    assert found is not None  # can_score checked it
    weights, intercept = found
    dot = x[0] * weights[0]
    for column, weight in zip(x[1:], weights[1:].tolist(), strict=True):
        dot = dot + column * weight
    return _each(lambda z: float(river_sigmoid(z)), dot + intercept)


def raw_many(scorer: Scorer, state: ModelState, packed: list[bytes], now_ms: list[int]) -> list[tuple[float, float]]:
    """Return each customer's models' own ``(churn, propensity)`` scores, as :meth:`Scorer.raw` gives them.

    ``packed`` are :func:`~operators.features.scoring_vectors` rows of the
    same number each; the caller checked :func:`can_score`.
    """
    n = len(packed)
    rows = np.frombuffer(b"".join(packed), dtype="<f8").reshape(n, -1, LAYOUT.size // 8)
    now = rows[:, 0, :]
    tasks = state.tasks
    stats = scorer.scaled(state.scaler)
    s = state.priors["sessions"].params or bgnbd.BgNbd()
    b = state.priors["purchases"].params or bgnbd.BgNbd()
    interval = scorer.interval_days
    age = now[:, BG_AGE]
    silence = state.silence
    weights = scorer.weights["churn"]
    floors = [
        silence.p_silent(math.expm1(silent), interval, weights, row_age, ms)
        for silent, row_age, ms in zip(now[:, DAYS_SINCE_LAST_SEEN].tolist(), age.tolist(), now_ms, strict=True)
    ]
    # Scorer.raw's weights: the floor is a candidate only with a curve, the same for everyone here.
    w_churn, w_propensity = scorer.blend_weights(state, silence.curve() is not None)
    say = says(w_churn, w_propensity)
    prior_churn = p_none_many(s, now[:, BG_SESSIONS_X], now[:, BG_SESSIONS_TX], age, scorer.horizon_days["churn"])
    prior_propensity = 1.0 - p_none_many(b, now[:, BG_PURCHASES_X], now[:, BG_PURCHASES_TX], age, scorer.horizon_days["propensity"])
    churn, propensity = (prior_churn if w_churn[1] == 1.0 else w_churn[1] * prior_churn), prior_propensity
    if say["churn"] or say["propensity"]:
        means = np.array([mean for _, mean, _ in stats], dtype=np.float64)
        sds = np.array([sd for _, _, sd in stats], dtype=np.float64)
        flat = sds == 0.0
        # (x - mean) / sd, 0.0 for a feature without variance: row_input's expression.
        scaled = np.where(flat, 0.0, (rows[:, :, :_FEATURES] - means) / np.where(flat, 1.0, sds))
        # Later rows take the steady features from the first (row_input's ``first``).
        scaled[:, 1:, _STEADY] = scaled[:, :1, _STEADY]

        def inputs(k: int) -> tuple[list[np.ndarray], np.ndarray]:
            row = rows[:, k, :]
            quiet = p_none_many(s, row[:, BG_SESSIONS_X], row[:, BG_SESSIONS_TX], row[:, BG_AGE], interval)
            no_buy = p_none_many(b, row[:, BG_PURCHASES_X], row[:, BG_PURCHASES_TX], row[:, BG_AGE], interval)
            columns = [scaled[:, k, i] for i in range(_FEATURES)]
            columns.append(_each(logit, quiet) / 4.0)
            columns.append(_each(logit, no_buy) / 4.0)
            return columns, no_buy

        x_now, week_no_buy = inputs(0)
        if say["churn"]:
            model = tasks["churn"].model
            log_quiet = np.zeros(n)
            # Scorer.raw zips the weights with the rows: as many intervals as both have.
            for k, weight in enumerate(scorer.weights["churn"][: rows.shape[1]]):
                x = x_now if k == 0 else inputs(k)[0]
                log_quiet = log_quiet + weight * _each(math.log, _each(clip, _predict(model, x)))
            churn = w_churn[0] * _each(math.exp, log_quiet) + churn
        if say["propensity"]:
            # As Scorer.raw: the learned odds (and each mixture's) relative to the prior's, carried to the horizon.
            p = _predict(tasks["propensity"].model, x_now)
            q = 1.0 - week_no_buy
            base = _each(logit, prior_propensity)
            logit_q = _each(logit, q)
            t, w_prior, w_mixed = w_propensity
            blend = t * _each(sigmoid, base + (_each(logit, p) - logit_q))
            for a, w in zip(MIXES, w_mixed, strict=True):
                if w:
                    blend = blend + w * _each(sigmoid, base + (_each(logit, a * p + (1.0 - a) * q) - logit_q))
            propensity = blend + w_prior * prior_propensity
    out = []
    for published_churn, published_propensity, floor in zip(churn.tolist(), propensity.tolist(), floors, strict=True):
        if floor is not None:
            if w_churn[2]:
                published_churn += w_churn[2] * floor
            published_churn = max(published_churn, floor)
        out.append((published_churn, min(published_propensity, 1.0 - published_churn)))
    return out


def warmed_up(state: ModelState, min_examples: int) -> bool:
    """Return whether users may be scored: once every prior has been fitted, or from the
    start with ``min_examples = 0`` (the priors' starting parameters). A loop, not all():
    every update with features asks."""
    if min_examples == 0:
        return True
    for prior in state.priors.values():
        if prior.params is None:
            return False
    return True


def scores_of_run(scorer: Scorer, state: ModelState, run: list[UserUpdate]) -> dict[int, dict[str, float]]:
    """Return the published scores of a run of updates that teach the models nothing, by ``id`` of the update.

    What :meth:`operators.models.ModelLogic.on_item` would publish for each,
    taken together; empty when the run is short, or not scored here
    (:func:`can_score`), or not scored at all yet (the priors' warm-up, as
    ``on_item`` decides it).
    """
    if len(run) < TOGETHER or not can_score(scorer, state):
        return {}
    if not warmed_up(state, scorer.min_examples):
        return {}
    by_size: dict[int, list[tuple[UserUpdate, bytes]]] = {}
    for value in run:
        if value.features is not None:
            by_size.setdefault(len(value.features), []).append((value, value.features))
    ready: dict[int, dict[str, float]] = {}
    for same in by_size.values():
        if len(same) < TOGETHER:
            continue
        # In slices: the arrays of the end of input's run at once would add about 1.5 KB per
        # customer to the end of input's peak memory (the rows joined, scaled, and temporaries).
        for start in range(0, len(same), _SLICE):
            part = same[start : start + _SLICE]
            scores = scorer.score_many(state, [packed for _, packed in part], [v.ts_ms for v, _ in part])
            ready.update(zip([id(v) for v, _ in part], scores, strict=True))
    return ready
