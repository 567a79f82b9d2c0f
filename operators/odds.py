"""Probabilities, odds and their logarithms, kept away from 0 and 1 (shared by the models' modules)."""

from __future__ import annotations

import math

__all__ = ["EPS", "clip", "sigmoid", "logit", "log_loss"]

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
