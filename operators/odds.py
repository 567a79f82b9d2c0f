"""Probabilities, odds and their logarithms, kept away from 0 and 1 (shared by the models' modules)."""

from __future__ import annotations

import math

__all__ = ["EPS", "clip", "sigmoid", "logit", "log_loss", "shares"]

#: How close to 0 or 1 a probability may get: keeps logits and losses finite.
EPS = 1e-6


def clip(p: float) -> float:
    """Return ``p`` within ``[EPS, 1 - EPS]``.

    >>> clip(0.0), clip(0.5)
    (1e-06, 0.5)
    """
    return min(1.0 - EPS, max(EPS, p))


def sigmoid(t: float) -> float:
    """Return the probability of log-odds ``t`` (``t`` is bounded to +-30: no overflow).

    >>> sigmoid(0.0)
    0.5
    """
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, t))))


def logit(p: float) -> float:
    """Return the log-odds of ``p`` (clipped first).

    >>> round(logit(0.75), 4)
    1.0986
    """
    p = clip(p)
    return math.log(p / (1.0 - p))


def log_loss(p: float, y: bool) -> float:
    """Return the log-loss (nats) of probability ``p`` for label ``y``.

    >>> round(log_loss(0.5, True), 4)
    0.6931
    """
    return -math.log(clip(p if y else 1.0 - p))


def shares(losses: list[float | None]) -> list[float]:
    """Return each candidate's weight in a Bayesian average from its (decayed) log-loss; ``None``: not a candidate.

    The weight of a model is its likelihood on the examples it was judged
    on, ``exp(-loss)``, normalised: ``1 / sum_j exp(loss - loss_j)``, each
    difference bounded to +-50 nats, so that with two candidates it is the
    logistic of their difference (:meth:`operators.weekly.Task.trust`) to the
    last bit. A candidate more than 50 nats behind the best has no say.

    >>> shares([10.0, 10.0, None])
    [0.5, 0.5, 0.0]
    >>> [round(w, 4) for w in shares([0.0, 1.0, 200.0])]
    [0.7311, 0.2689, 0.0]
    """
    known = [loss for loss in losses if loss is not None]
    if not known:
        return [0.0] * len(losses)
    best = min(known)
    return [
        0.0 if loss is None or loss - best > 50.0 else 1.0 / sum(math.exp(max(-50.0, min(50.0, loss - other))) for other in known)
        for loss in losses
    ]
