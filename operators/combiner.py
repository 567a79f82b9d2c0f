"""A small stacked model per task, fitted to the horizon's own question: the published score at last.

The weekly models answer a one-interval question and chain it into the
horizon's (:mod:`operators.models`); nothing so far judged the chain on the
question it is asked, and the naive baselines (recency, the BG/NBD prior)
sometimes rank the horizon better. So each task has a logistic regression
over four inputs that each name one of those candidates:

* ``logit`` of the score as the models give it (learned chain, trust,
  silence floor, the purchase's bound);
* ``logit`` of the prior's chance over the horizon (BG/NBD alone);
* ``log1p`` of the days since the last visit (churn), or minus that of the
  days since the last purchase (propensity): recency alone;
* minus ``log1p`` of the sessions (churn), or ``log1p`` of the purchases
  (propensity): frequency alone.

Each input is signed so that more of it means more of the outcome, as the
baseline it names ranks customers, and the weights are kept non-negative
(Breiman's stacked regressions, 1996: unconstrained stacking weights
over-fit and extrapolate). Measured why: unconstrained, the stack fitted on
`default`'s period gave frequency a churn weight of the wrong sign (its
in-period churners were busy users who quit) and the prior a negative one,
and ranked the end of the period at AUC 0.27. A non-negative blend of
scores that each rank the outcome the right way round can lean on one more
than another, never turn one upside down.

It learns from grid moments whose horizon has resolved
(:mod:`operators.grid_moments`), each scored as it would have been at its
own moment. Why a logistic regression on these and not a monotone map of the
best single input: the baselines the issue asks to beat are these inputs,
and a stack that sees each of them on the very question judged can lean on
whichever ranks it best (item 3), while its output is fitted to the
horizon's outcome (item 4, calibration); an isotonic map of one input can do
the second only. Four weights and an intercept need few outcomes, and a
linear stack over logits keeps each input's ranking where it dominates.

Fit: Newton's method (iteratively reweighted least squares) over the last
``WINDOW`` resolved moments, inputs standardised, a small ridge (``RIDGE``) so
a separable window has a finite fit. Re-fitted once per grid interval, never
per outcome: customers scored within the same interval (all of them at the
end of a replay) are scored by the same weights, so a refit never reorders
them. Until ``min_resolved`` moments (and ``MIN_CLASS`` of each outcome) have
resolved it has no say: the score is the models' own.

Memory: per task, ``WINDOW`` resolved moments of five floats, and five
weights; in the models step's snapshot.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from journeyflow.evaluation import roc_auc
from operators.odds import log_loss, logit, sigmoid

__all__ = ["INPUTS", "MIN_CLASS", "RIDGE", "WINDOW", "Combiner", "fit_logistic", "fit_nonnegative"]

#: Names of the inputs, in order (see the module docstring).
INPUTS = ("score", "prior", "recency", "frequency")
#: Resolved moments each fit reads (the latest): about a quarter of a year of
#: a sample of 2,000 customers' weeks.
WINDOW = 6000
#: Outcomes of each kind a fit needs: a stack of one class has nothing to say.
MIN_CLASS = 20
#: Ridge on the standardised weights (not the intercept), in units of one
#: resolved moment's log-likelihood: negligible next to thousands of moments,
#: it keeps a separable window's fit finite.
RIDGE = 1.0


def fit_nonnegative(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Return ``[intercept, weights...]`` of the ridge logistic regression of ``y`` on ``x`` with every weight ``>= 0``.

    An active set: fit, drop the inputs whose weight came out negative (the
    most negative first), fit again on the rest, until none is negative; a
    dropped input's weight is 0. (Four inputs: at most four fits.)

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(4000, 2))
    >>> y = rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))
    >>> [round(float(w), 1) for w in fit_nonnegative(x, y)]
    [0.4, 1.7, 0.0]
    """
    d = x.shape[1]
    active = list(range(d))
    while True:
        w = fit_logistic(x[:, active], y, ridge)
        worst = int(np.argmin(w[1:])) if active else 0
        if not active or w[1 + worst] >= 0.0:
            break
        del active[worst]
    full = np.zeros(d + 1)
    full[0] = w[0]
    for j, i in enumerate(active):
        full[1 + i] = w[1 + j]
    return full


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iterations: int = 30) -> np.ndarray:
    """Return ``[intercept, weights...]`` of the ridge logistic regression of ``y`` on ``x`` (Newton's method).

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(4000, 2))
    >>> y = rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))
    >>> [round(float(w), 1) for w in fit_logistic(x, y)]
    [0.5, 2.0, -1.0]
    """
    n, d = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    target = y.astype(float)
    share = min(1.0 - 1e-6, max(1e-6, float(target.mean())))
    w = np.zeros(d + 1)
    w[0] = math.log(share / (1.0 - share))
    penalty = np.full(d + 1, ridge)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30.0, 30.0)))
        gradient = design.T @ (p - target) + penalty * w
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(d + 1), gradient)
        w -= step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return w


@dataclass
class _Fit:
    """A fitted stack: standardisation of the inputs, then the weights."""

    means: tuple[float, ...]
    sds: tuple[float, ...]
    weights: tuple[float, ...]
    """Intercept first."""

    def predict(self, z: tuple[float, ...]) -> float:
        t = self.weights[0]
        for value, mean, sd, w in zip(z, self.means, self.sds, self.weights[1:], strict=True):
            t += w * (value - mean) / sd
        return sigmoid(t)


@dataclass
class _Stack:
    """One task's resolved moments and current fit."""

    resolved: deque[tuple[bool, tuple[float, ...], float | None]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    """(outcome, inputs, the stack's score before it was learned: progressive)."""
    fit: _Fit | None = None
    outcomes: int = 0
    """Resolved moments learned in all (the window holds the latest)."""
    loss: float = 0.0
    """Progressive log-loss (nats, summed) of the stack on moments it had a say in ..."""
    score_loss: float = 0.0
    """... and of the models' own score on the same moments."""
    judged: int = 0


@dataclass
class Combiner:
    """The two stacks (``churn``, ``propensity``); see the module docstring."""

    stacks: dict[str, _Stack] = field(default_factory=lambda: {"churn": _Stack(), "propensity": _Stack()})
    fitted_ms: int | None = None
    """The grid moment the stacks were last fitted at."""

    @staticmethod
    def inputs(score: float, prior: float, log_days: float, log_count: float) -> tuple[float, ...]:
        """Return a stack's inputs (see :data:`INPUTS`): days and counts already as ``log1p``."""
        return (logit(score), logit(prior), log_days, -log_count)

    def learn(self, task: str, z: tuple[float, ...], outcome: bool) -> None:
        """Keep a resolved moment (inputs ``z``, the horizon's ``outcome``) for the next fit; score it first."""
        stack = self.stacks[task]
        progressive = None
        if stack.fit is not None:
            progressive = stack.fit.predict(z)
            stack.loss += log_loss(progressive, outcome)
            stack.score_loss += log_loss(sigmoid(z[0]), outcome)
            stack.judged += 1
        stack.resolved.append((outcome, z, progressive))
        stack.outcomes += 1

    def refit(self, now_ms: int, interval_ms: int, min_resolved: int) -> None:
        """Fit each stack that has enough outcomes, once per grid interval (see the module docstring)."""
        moment = now_ms // interval_ms * interval_ms
        if self.fitted_ms is not None and moment <= self.fitted_ms:
            return
        self.fitted_ms = moment
        for stack in self.stacks.values():
            if len(stack.resolved) < max(1, min_resolved):
                continue
            y = np.array([r[0] for r in stack.resolved], dtype=bool)
            positives = int(y.sum())
            if min(positives, len(y) - positives) < MIN_CLASS:
                continue
            x = np.array([r[1] for r in stack.resolved], dtype=float)
            means = x.mean(axis=0)
            sds = x.std(axis=0)
            sds[sds < 1e-9] = 1.0
            w = fit_nonnegative((x - means) / sds, y)
            stack.fit = _Fit(tuple(float(v) for v in means), tuple(float(v) for v in sds), tuple(float(v) for v in w))

    def apply(self, task: str, z: tuple[float, ...], score: float) -> float:
        """Return the stack's chance for inputs ``z``; ``score`` (the models' own) while it has no fit."""
        fit = self.stacks[task].fit
        return score if fit is None else fit.predict(z)

    def report(self) -> dict[str, Any]:
        """Return per task: outcomes, the fit, and the window's AUC of each input and of the stack (progressive)."""
        out: dict[str, Any] = {}
        for name, stack in self.stacks.items():
            labels = [r[0] for r in stack.resolved]
            aucs = {}
            for i, who in enumerate(INPUTS):
                a = roc_auc([r[1][i] for r in stack.resolved], labels)
                aucs[who] = None if a is None else round(a, 4)
            scored = [(r[0], r[2]) for r in stack.resolved if r[2] is not None]
            a = roc_auc([p for _, p in scored], [y for y, _ in scored]) if scored else None
            aucs["stack_progressive"] = None if a is None else round(a, 4)
            fit = stack.fit
            out[name] = {
                "outcomes": stack.outcomes,
                "window": len(stack.resolved),
                "positive_share": round(sum(labels) / len(labels), 4) if labels else None,
                "weights": None if fit is None else dict(zip(("intercept", *INPUTS), (round(w, 4) for w in fit.weights), strict=True)),
                "horizon_auc": aucs,
                "progressive_log_loss": None
                if not stack.judged
                else {"stack": round(stack.loss / stack.judged, 4), "score": round(stack.score_loss / stack.judged, 4)},
            }
        return out

