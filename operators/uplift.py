"""Uplift of a trigger rule: treated against held-out conversion rates, with 95% intervals.

The statistics, stated once:

* A rule's triggers (treated, per variant) and held-out would-be triggers are
  the trials; a trial counts once its attribution window has passed (or the
  input has ended after it), converted or not. Trials whose window is still
  open are ``pending`` and left out, so early conversions do not inflate a rate.
* Each rate has a Wilson score interval (Wilson 1927), which stays inside
  [0, 1] and keeps its coverage for small counts and rates near 0, unlike the
  normal ("Wald") interval.
* The absolute uplift (treated rate minus holdout rate) has Newcombe's hybrid
  score interval (Newcombe 1998, method 10), built from the two Wilson
  intervals. The relative uplift is the absolute one over the holdout rate.
* Revenue per user is the attributed conversions' value over the trials.

scipy, which River brings along, has the Wilson interval but not Newcombe's;
the two are a few lines each, checked in ``tests/operators/test_uplift.py``
against scipy and against Newcombe's published example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.goals import HOLDOUT

__all__ = ["Z95", "ArmTally", "wilson", "newcombe", "rule_uplift"]

#: The standard normal quantile for a two-sided 95% interval.
Z95 = 1.959963984540054


@dataclass(slots=True)
class ArmTally:
    """Trials of one arm (a variant, ``treatment`` or ``holdout``) whose outcome is known."""

    n: int = 0
    conversions: int = 0
    revenue: float = 0.0
    expired: int = 0
    pending: int = 0
    """Trials still inside their window (not in ``n``)."""

    def add(self, other: ArmTally) -> None:
        """Add ``other``'s counts to this tally."""
        self.n += other.n
        self.conversions += other.conversions
        self.revenue += other.revenue
        self.expired += other.expired
        self.pending += other.pending


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of ``successes`` out of ``n``.

    >>> [round(x, 4) for x in wilson(56, 70)]
    [0.6918, 0.877]
    >>> wilson(0, 10)[0]
    0.0
    """
    if n <= 0:
        msg = f"n must be > 0; got {n} instead"
        raise ValueError(msg)
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Return Newcombe's hybrid score interval of ``x1/n1 - x2/n2``.

    >>> [round(x, 4) for x in newcombe(56, 70, 48, 80)]
    [0.0524, 0.3339]
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _arm(t: ArmTally) -> dict[str, Any]:
    return {
        "n": t.n,
        "conversions": t.conversions,
        "rate": round(t.conversions / t.n, 6) if t.n else None,
        "rate_ci95": [round(x, 6) for x in wilson(t.conversions, t.n)] if t.n else None,
        "revenue_per_user": round(t.revenue / t.n, 4) if t.n else None,
        "expired": t.expired,
        "pending": t.pending,
    }


def _versus(treated: ArmTally, holdout: ArmTally) -> dict[str, Any]:
    if not (treated.n and holdout.n):
        return {"uplift_abs": None, "uplift_abs_ci95": None, "uplift_rel": None}
    p1, p0 = treated.conversions / treated.n, holdout.conversions / holdout.n
    low, high = newcombe(treated.conversions, treated.n, holdout.conversions, holdout.n)
    return {
        "uplift_abs": round(p1 - p0, 6),
        "uplift_abs_ci95": [round(low, 6), round(high, 6)],
        "uplift_rel": round((p1 - p0) / p0, 6) if p0 > 0 else None,
    }


def rule_uplift(window_ms: int, arms: Mapping[str, ArmTally]) -> dict[str, Any]:
    """Return a rule's uplift record for ``summary.json`` from its arms' tallies.

    ``arms`` maps ``holdout``, ``treatment`` or each variant's name to its
    tally. Variant arms also get their own uplift against the holdout and
    their ``share`` of the treated trials (the bandit's allocation).

    >>> doc = rule_uplift(86_400_000, {"treatment": ArmTally(100, 30), "holdout": ArmTally(100, 20)})
    >>> doc["uplift_abs"], doc["uplift_rel"], doc["treated"]["rate"]
    (0.1, 0.5, 0.3)
    """
    treated = ArmTally()
    for name, tally in arms.items():
        if name != HOLDOUT:
            treated.add(tally)
    holdout = arms.get(HOLDOUT, ArmTally())
    shown: dict[str, Any] = {}
    for name in sorted(arms, key=lambda a: (a == HOLDOUT, a)):
        shown[name] = _arm(arms[name])
        if name != HOLDOUT:
            shown[name]["share"] = round(arms[name].n / treated.n, 6) if treated.n else None
            shown[name].update(_versus(arms[name], holdout))
    return {
        "window_s": window_ms // 1000,
        "arms": shown,
        "treated": _arm(treated),
        "holdout": _arm(holdout),
        **_versus(treated, holdout),
        "expired": treated.expired + holdout.expired,
        "pending": treated.pending + holdout.pending,
    }
