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
the curve reads the counts (:func:`monotone_curve`): a band with fewer than
``MIN_BAND`` examples is pooled with the one before, the chance never falls
as the silence grows (a silence that has lasted longer is no likelier to
end), and past the last band with ``MIN_BAND`` examples the chance of a
return keeps falling geometrically, at the rate fitted over the populated
bands (:func:`operators.life_table.monotone_curve`; the fewer are still coming back, the longer the
silence), never surer than the counts. A band's count is the mean chance
over its silences, so the floor reads the curve at the band's middle and
between two middles on the line between them (:func:`operators.life_table.read_between`): a step per
band scored everyone in it alike, the customer silent 8 days as the one
silent 13. Only completed intervals are counted: a return is known at once,
a silence that goes on only once the interval has passed, so a return waits
for its interval (``pending``, per snapshot moment) and the last week of a
history does not read as "everyone comes back".

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
longer silence), two per cell of the young rows (``AGE_BANDS`` squared), and
the waiting returns' counts of the moments less than an interval old.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from operators.life_table import MIN_BAND, monotone_curve, read_between

__all__ = ["AGE_BANDS", "BANDS", "MIN_BAND", "SilenceCurve", "monotone_curve"]

#: Bands of whole intervals already silent; the last holds every longer silence.
BANDS = 13
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
    (0.304, 0.885, 0.981)
    >>> round(curve.p_silent(2.0, 7.0, (1.0, 1.0)), 3)  # 2 days silent (band 0), then 9 (between bands 0 and 1)
    0.231
    """

    examples: list[int] = field(default_factory=lambda: [0] * BANDS)
    stayed: list[int] = field(default_factory=lambda: [0] * BANDS)
    young_examples: list[list[int]] = field(default_factory=lambda: [[0] * AGE_BANDS for _ in range(AGE_BANDS)])
    """[age band][silence band] counts of really new customers' examples."""
    young_stayed: list[list[int]] = field(default_factory=lambda: [[0] * AGE_BANDS for _ in range(AGE_BANDS)])
    start_ms: int | None = None
    """First seen time of the earliest customer of the stream (its left edge)."""
    clock_ms: int | None = None
    """The latest moment the examples show has passed (a stay of the moment ``s``: ``s`` plus an interval)."""
    pending: dict[int, list[int]] = field(default_factory=dict)
    """Returns of a grid moment whose interval has not passed yet, by moment: counts per band, then per young cell."""

    @staticmethod
    def band(days_silent: float, interval_days: float) -> int:
        """Return the band of a silence of ``days_silent``."""
        return min(BANDS - 1, max(0, int(days_silent // interval_days)))

    def learn(
        self, days_silent: float, interval_days: float, stayed_away: bool, age_days: float = 0.0, ts_ms: int | None = None
    ) -> None:
        """Count one example: silent ``days_silent`` at its snapshot (at ``ts_ms``, ``age_days`` after the customer's first visit), and whether the next interval was silent too.

        A return is known the moment it happens, a silence that goes on only
        once the interval has passed: counting returns at once would read a
        moment's returns before any of its silences (the last week of a
        history: returns only), and lower every band's chance. So a return of
        a snapshot taken at ``ts_ms`` is counted once the interval after it
        has passed (a life table counts completed intervals only): when an
        example shows that time (a silence of the same moment, or a snapshot
        an interval later). Without ``ts_ms``, counted at once.
        """
        b = self.band(days_silent, interval_days)
        if ts_ms is None:
            self.examples[b] += 1
            self.stayed[b] += int(stayed_away)
            return
        first_ms = ts_ms - int(age_days * _DAY_MS)
        if self.start_ms is None or first_ms < self.start_ms:
            self.start_ms = first_ms
        cell = -1
        if self._young(age_days, first_ms, interval_days):
            cell = self.band(age_days, interval_days) * AGE_BANDS + min(b, AGE_BANDS - 1)
        interval_ms = round(interval_days * _DAY_MS)
        passed = ts_ms + interval_ms if stayed_away else ts_ms
        if self.clock_ms is None or passed > self.clock_ms:
            self.clock_ms = passed
        if stayed_away or ts_ms + interval_ms <= self.clock_ms:
            self._count(b, cell, 1, int(stayed_away))
        else:
            counts = self.pending.setdefault(ts_ms, [0] * (BANDS + AGE_BANDS * AGE_BANDS))
            counts[b] += 1
            if cell >= 0:
                counts[BANDS + cell] += 1
        for moment in [m for m in self.pending if m + interval_ms <= self.clock_ms]:
            counts = self.pending.pop(moment)
            for band in range(BANDS):
                if counts[band]:
                    self._count(band, -1, counts[band], 0)
            for young in range(AGE_BANDS * AGE_BANDS):
                if counts[BANDS + young]:
                    self._count(-1, young, counts[BANDS + young], 0)

    def _count(self, band: int, cell: int, examples: int, stayed: int) -> None:
        """Add ``examples`` (``stayed`` of them silences that went on) to ``band`` and to young ``cell`` (-1: none)."""
        if band >= 0:
            self.examples[band] += examples
            self.stayed[band] += stayed
        if cell >= 0:
            a, k = divmod(cell, AGE_BANDS)
            self.young_examples[a][k] += examples
            self.young_stayed[a][k] += stayed

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
        curve = self.curve()
        return None if curve is None else curve[min(band, BANDS - 1)]

    def quiet_after(self, intervals: float) -> float | None:
        """Return the chance of no return in the next interval after ``intervals`` (a fraction) of silence, between the bands (:func:`operators.life_table.read_between`)."""
        curve = self.curve()
        return None if curve is None else read_between(curve, intervals)

    def curve(self) -> list[float] | None:
        """Return :func:`monotone_curve` of the counts, taken once per count (they only grow)."""
        seen = sum(self.examples)
        cached = self.__dict__.get("_curve")
        if cached is None or cached[0] != seen:
            cached = (seen, monotone_curve(self.examples, self.stayed))
            # Derived, never pickled (see __getstate__): a snapshot holds the counts alone.
            self.__dict__["_curve"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_curve", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        # A snapshot from before returns waited for their interval: nothing waits, the clock starts with the next example.
        self.__dict__.update({"clock_ms": None, "pending": {}, **state})

    def p_silent(
        self,
        days_silent: float,
        interval_days: float,
        weights: tuple[float, ...],
        age_days: float = math.inf,
        now_ms: int | None = None,
    ) -> float | None:
        """Return the chance of no return over the intervals ``weights`` cover, silent ``days_silent`` now (``age_days`` old at ``now_ms``)."""
        curve = self.curve()
        if curve is None:
            return None
        young = now_ms is not None and self._young(age_days, now_ms - int(min(age_days, 1e5) * _DAY_MS), interval_days)
        log_quiet = 0.0
        for k, weight in enumerate(weights):
            band = self.band(days_silent + k * interval_days, interval_days)
            q = read_between(curve, (days_silent + k * interval_days) / interval_days)
            age = age_days + k * interval_days
            if young and age < AGE_BANDS * interval_days:
                # Their own row where it is known; never below all ages' (the floor only lifts).
                own = self.young_quiet(self.band(age, interval_days), band)
                if own is not None and own > q:
                    q = own
            log_quiet += weight * math.log(q)
        return math.exp(log_quiet)
