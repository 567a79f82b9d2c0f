"""How long silences last: a curve of the chance of no return, by weeks already silent, counted from the labels.

Every weekly churn example (:mod:`operators.labels`) is a customer silent
for some whole number of intervals at its snapshot who then came back within
the next interval or did not: a return after a gap of that length, or a
silence that goes on (censored, and carried further by the next snapshot).
Counted per band of intervals already silent, they give the chance of no
return in the next interval given the silence so far (a life table: the
discrete hazard of a return, without a model), and chained along the silent
path, the chance of no return within the horizon, as a function of recency
alone.

It is the floor of ``churn_risk`` (:mod:`operators.models`): the learned
chain is a linear model of many features, and it extrapolates badly where
examples are few (long silences in a short history: customers silent three
weeks or more scored 0.19 on a 30-day history where 0.88 did not return);
the curve does not extrapolate, it reads the counts. A band with fewer than
``MIN_BAND`` examples takes the value of the last band that has them (a
silence that has lasted longer is no likelier to end).

Memory: two counts per band, ``BANDS`` bands (the last one holds every
longer silence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["BANDS", "MIN_BAND", "SilenceCurve"]

#: Bands of whole intervals already silent; the last holds every longer silence.
BANDS = 13
#: Examples a band needs before its own count is read.
MIN_BAND = 20


@dataclass
class SilenceCurve:
    """Counts of examples and of silences that went on, per band of intervals already silent.

    >>> curve = SilenceCurve()
    >>> for stayed in [True] * 30 + [False] * 70:
    ...     curve.learn(2.0, 7.0, stayed)
    >>> for stayed in [True] * 45 + [False] * 5:
    ...     curve.learn(10.0, 7.0, stayed)
    >>> round(curve.quiet(0), 3), round(curve.quiet(1), 3), round(curve.quiet(5), 3)
    (0.304, 0.885, 0.885)
    >>> round(curve.p_silent(2.0, 7.0, (1.0, 1.0)), 3)  # week 0, then week 1
    0.269
    """

    examples: list[int] = field(default_factory=lambda: [0] * BANDS)
    stayed: list[int] = field(default_factory=lambda: [0] * BANDS)

    @staticmethod
    def band(days_silent: float, interval_days: float) -> int:
        """Return the band of a silence of ``days_silent``."""
        return min(BANDS - 1, max(0, int(days_silent // interval_days)))

    def learn(self, days_silent: float, interval_days: float, stayed_away: bool) -> None:
        """Count one example: silent ``days_silent`` at its snapshot, and whether the next interval was silent too."""
        b = self.band(days_silent, interval_days)
        self.examples[b] += 1
        self.stayed[b] += int(stayed_away)

    def quiet(self, band: int) -> float | None:
        """Return the chance of no return in the next interval after ``band`` intervals of silence (``None``: no data yet)."""
        found = None
        for b in range(min(band, BANDS - 1) + 1):
            if self.examples[b] >= MIN_BAND:
                # Laplace's rule: never exactly 0 or 1.
                found = (self.stayed[b] + 1) / (self.examples[b] + 2)
        return found

    def p_silent(self, days_silent: float, interval_days: float, weights: tuple[float, ...]) -> float | None:
        """Return the chance of no return over the intervals ``weights`` cover, silent ``days_silent`` now."""
        log_quiet = 0.0
        for k, weight in enumerate(weights):
            q = self.quiet(self.band(days_silent + k * interval_days, interval_days))
            if q is None:
                return None
            log_quiet += weight * math.log(q)
        return math.exp(log_quiet)
