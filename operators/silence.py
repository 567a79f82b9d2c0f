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

Young customers have their own rows (bands of age, ``AGE_BANDS`` intervals):
a customer who visited once or twice a few days ago is not a regular who
has been away as long, and the learned chain, which saw the stream's first
customers as "young" (their age starts at the stream's start, though they are
old customers) and saw them come back, extrapolates them to near zero. So a
customer first seen at least ``AGE_BANDS`` intervals after the stream's first
customer (not active in the stream's first weeks: really new, not
left-censored) is counted in the row of their age too, and scored by it:
the chance of no return read from their own row where it has
``MIN_BAND`` examples, never below the all-ages band of the same silence
(the floor only lifts).

Memory: two counts per band, ``BANDS`` bands (the last one holds every
longer silence), and two per cell of the young rows (``AGE_BANDS`` squared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["AGE_BANDS", "BANDS", "MIN_BAND", "SilenceCurve"]

#: Bands of whole intervals already silent; the last holds every longer silence.
BANDS = 13
#: Examples a band needs before its own count is read.
MIN_BAND = 20
#: Young customers' rows: whole intervals of age below this (a month of weeks).
AGE_BANDS = 4
_DAY_MS = 86_400_000


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
    young_examples: list[list[int]] = field(default_factory=lambda: [[0] * AGE_BANDS for _ in range(AGE_BANDS)])
    """[age band][silence band] counts of really new customers' examples."""
    young_stayed: list[list[int]] = field(default_factory=lambda: [[0] * AGE_BANDS for _ in range(AGE_BANDS)])
    start_ms: int | None = None
    """First seen time of the earliest customer of the stream (its left edge)."""

    @staticmethod
    def band(days_silent: float, interval_days: float) -> int:
        """Return the band of a silence of ``days_silent``."""
        return min(BANDS - 1, max(0, int(days_silent // interval_days)))

    def learn(
        self, days_silent: float, interval_days: float, stayed_away: bool, age_days: float = 0.0, ts_ms: int | None = None
    ) -> None:
        """Count one example: silent ``days_silent`` at its snapshot (at ``ts_ms``, ``age_days`` after the customer's first visit), and whether the next interval was silent too."""
        b = self.band(days_silent, interval_days)
        self.examples[b] += 1
        self.stayed[b] += int(stayed_away)
        if ts_ms is None:
            return
        first_ms = ts_ms - int(age_days * _DAY_MS)
        if self.start_ms is None or first_ms < self.start_ms:
            self.start_ms = first_ms
        if self._young(age_days, first_ms, interval_days):
            a = self.band(age_days, interval_days)
            k = min(b, AGE_BANDS - 1)
            self.young_examples[a][k] += 1
            self.young_stayed[a][k] += int(stayed_away)

    def _young(self, age_days: float, first_ms: int, interval_days: float) -> bool:
        """Return whether a customer ``age_days`` old, first seen at ``first_ms``, belongs to the young rows."""
        span_ms = AGE_BANDS * interval_days * _DAY_MS
        return self.start_ms is not None and first_ms - self.start_ms >= span_ms and age_days < AGE_BANDS * interval_days

    def young_quiet(self, age_band: int, band: int) -> float | None:
        """Return the young rows' chance of no return after ``band`` intervals of silence at age ``age_band`` (``None``: too few examples).

        An empty cell takes the value of the known cell of the longest
        silence no longer than ``band``, at that age or younger: along the
        silent path age grows with the silence, and a silence that has
        lasted longer is no likelier to end (as for all ages).
        """
        found = None
        for b in range(min(band, AGE_BANDS - 1) + 1):
            for a in range(min(age_band, AGE_BANDS - 1) + 1):
                if self.young_examples[a][b] >= MIN_BAND:
                    found = (self.young_stayed[a][b] + 1) / (self.young_examples[a][b] + 2)
        return found

    def quiet(self, band: int) -> float | None:
        """Return the chance of no return in the next interval after ``band`` intervals of silence (``None``: no data yet)."""
        found = None
        for b in range(min(band, BANDS - 1) + 1):
            if self.examples[b] >= MIN_BAND:
                # Laplace's rule: never exactly 0 or 1.
                found = (self.stayed[b] + 1) / (self.examples[b] + 2)
        return found

    def p_silent(
        self,
        days_silent: float,
        interval_days: float,
        weights: tuple[float, ...],
        age_days: float = math.inf,
        now_ms: int | None = None,
    ) -> float | None:
        """Return the chance of no return over the intervals ``weights`` cover, silent ``days_silent`` now (``age_days`` old at ``now_ms``)."""
        young = now_ms is not None and self._young(age_days, now_ms - int(min(age_days, 1e5) * _DAY_MS), interval_days)
        log_quiet = 0.0
        for k, weight in enumerate(weights):
            band = self.band(days_silent + k * interval_days, interval_days)
            q = self.quiet(band)
            if q is None:
                return None
            age = age_days + k * interval_days
            if young and age < AGE_BANDS * interval_days:
                # Their own row where it is known; never below all ages' (the floor only lifts).
                own = self.young_quiet(self.band(age, interval_days), band)
                if own is not None and own > q:
                    q = own
            log_quiet += weight * math.log(q)
        return math.exp(log_quiet)
