"""A snapshot's features along the silent path: what scoring at the snapshot's own moment would have asked.

The published scores chain one-interval chances along the path on which the
customer stays silent (:func:`operators.features.scoring_vectors`, built by
the journey step from the whole profile). A weekly snapshot
(:func:`operators.features.snapshot_vector`) carries one vector only, yet the
calibration (:mod:`operators.calibration`) needs the score as published at
the snapshot's moment. Most features follow from the snapshot alone along a
silence: the days since grow, ``events_7d`` empties, engagement decays by its
half-life, the rhythm-relative ones (``idle_vs_usual``, ``purchase_due``)
follow from the counts, and the prior's age grows. Trailing-window counts
(30 and 90 days) are the one approximation: the events in them are taken as
spread evenly between the window's start and the last visit (purchase), and
a window that no longer reaches the last one is empty (exact).
"""

from __future__ import annotations

import math

from operators.cluster_features import CAP_DAYS
from operators.profiles import ENGAGEMENT_SCALE

__all__ = ["silent_path"]

#: Trailing windows (days) of the counts, and which "days since" bounds them.
_WINDOWS = (
    ("events_7d", 7.0, "days_since_last_seen"),
    ("events_30d", 30.0, "days_since_last_seen"),
    ("sessions_30d", 30.0, "days_since_last_seen"),
    ("purchases_30d", 30.0, "days_since_last_purchase"),
    ("purchases_90d", 90.0, "days_since_last_purchase"),
    ("monetary_90d", 90.0, "days_since_last_purchase"),
)


def _days(x: float, later: float) -> float:
    return min(CAP_DAYS, math.expm1(x) + later)


def silent_path(v: dict[str, float], steps: int, interval_days: float, half_life_days: float) -> tuple[dict[str, float], ...]:
    """Return ``v`` and the ``steps - 1`` vectors after each further silent interval.

    >>> v = {"days_since_last_seen": math.log1p(2.0), "days_since_first_seen": math.log1p(30.0),
    ...      "days_since_last_purchase": math.log1p(CAP_DAYS), "has_purchased": 0.0, "purchases_total": 0.0,
    ...      "sessions_total": math.log1p(5.0), "engagement": 0.5, "events_7d": math.log1p(3.0),
    ...      "events_30d": math.log1p(28.0), "sessions_30d": math.log1p(5.0), "purchases_30d": 0.0,
    ...      "purchases_90d": 0.0, "monetary_90d": 0.0, "idle_vs_usual": 0.0, "purchase_due": 0.0, "bg_age": 30.0}
    >>> path = silent_path(v, 3, 7.0, 7.0)
    >>> path[0] is v, round(math.expm1(path[2]["days_since_last_seen"]), 6), path[1]["events_7d"], path[2]["bg_age"]
    (True, 16.0, 0.0, 44.0)
    >>> round(math.expm1(path[1]["events_30d"]), 6), round(path[1]["engagement"], 4)
    (21.0, 0.3333)
    """
    path = [v]
    # (Clamped to what a profile can hold: the tests' random vectors hold anything.)
    e = min(max(v["engagement"], 0.0), 1.0 - 1e-12)
    engagement_raw = e * ENGAGEMENT_SCALE / (1.0 - e)
    sessions = max(1.0, round(math.expm1(v["sessions_total"])))
    bought = max(0, round(math.expm1(v["purchases_total"])))
    for k in range(1, steps):
        later = k * interval_days
        w = dict(v)
        seen = _days(v["days_since_last_seen"], later)
        known = _days(v["days_since_first_seen"], later)
        w["days_since_last_seen"] = math.log1p(seen)
        w["days_since_first_seen"] = math.log1p(known)
        if v["has_purchased"]:
            w["days_since_last_purchase"] = math.log1p(_days(v["days_since_last_purchase"], later))
        for name, window, since in _WINDOWS:
            gap = math.expm1(v[since])
            # Events sit in (window start, last visit]; the share still inside the window later on.
            left = (window - gap - later) / (window - gap) if window > gap + later else 0.0
            w[name] = math.log1p(max(0.0, math.expm1(v[name])) * left)
        raw = engagement_raw * math.pow(0.5, later / half_life_days)
        w["engagement"] = raw / (raw + ENGAGEMENT_SCALE)
        w["idle_vs_usual"] = math.log1p(seen / (known / sessions + 0.5))
        if bought:
            days_bought = _days(v["days_since_last_purchase"], later)
            w["purchase_due"] = math.log1p(days_bought / (known / bought + 1.0))
        w["bg_age"] = v["bg_age"] + later
        path.append(w)
    return tuple(path)
