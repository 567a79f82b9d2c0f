"""The behavioural features that place a user in a cluster (:mod:`operators.clusters`).

Rates and shares (conversion, cart adds and searches per session, basket
size) that tell buyers, browsers, cart abandoners, bargain hunters, new and
lapsed users apart. :data:`CLUSTER_UNITS` says how to read each back in its
own units (:func:`describe`).
"""

from __future__ import annotations

import math
from typing import Any, Final

from operators.log1p import log1p_count, log1p_float
from operators.profiles import DAY_MS, View
from operators.variables import PROFILE

__all__ = ["CAP_DAYS", "CLUSTER_FEATURES", "CLUSTER_UNITS", "cluster_features", "describe"]

#: Days beyond this read as this, in these features and the classifier's
#: (:mod:`operators.features`): the log1p scale stays bounded.
CAP_DAYS: Final = 365.0


def _days(view: View, since_ms: int | None) -> float:
    if since_ms is None:
        return CAP_DAYS
    return min(CAP_DAYS, max(0.0, (view.now_ms - since_ms) / DAY_MS))


CLUSTER_FEATURES: Final = (
    "purchases_90d",
    "basket",
    "sessions_30d",
    "events_per_session",
    "conversion_rate",
    "cart_adds_per_session",
    "searches_per_session",
    "email_clicks_per_session",
    "days_since_last_seen",
    "days_since_first_seen",
)

#: How a cluster feature reads in its own units: ``log1p`` values are shown
#: through ``expm1``, the others as they are.
CLUSTER_UNITS = {
    "purchases_90d": "log1p",
    "basket": "log1p",
    "sessions_30d": "log1p",
    "events_per_session": "log1p",
    "conversion_rate": "share",
    "cart_adds_per_session": "rate",
    "searches_per_session": "rate",
    "email_clicks_per_session": "rate",
    "days_since_last_seen": "log1p",
    "days_since_first_seen": "log1p",
}

def cluster_features(view: View) -> dict[str, float]:
    """Return the behavioural features that place a user in a cluster."""
    p = view.profile
    sessions = max(1, p.sessions_closed + view.open_sessions)
    basket = p.revenue_total / p.purchases_total if p.purchases_total else 0.0
    table = PROFILE  # (a local: compiled, a module global is a dict look-up at every use)
    # (log1p of a count from its table, of a float without the call for a zero: operators.log1p, the same floats.)
    return {
        "purchases_90d": log1p_count(table["purchases_90d"].get(view)),
        "basket": log1p_float(basket),
        "sessions_30d": log1p_count(table["sessions_30d"].get(view)),
        "events_per_session": log1p_float(p.events_total / sessions),
        "conversion_rate": table["conversion_rate"].get(view),
        "cart_adds_per_session": p.cart_adds_total / sessions,
        "searches_per_session": p.searches_total / sessions,
        "email_clicks_per_session": p.email_clicks / sessions,
        "days_since_last_seen": log1p_float(_days(view, p.last_seen_ms)),
        "days_since_first_seen": log1p_float(_days(view, p.first_seen_ms)),
    }


def describe(center: dict[Any, float]) -> dict[str, float]:
    """Return a cluster centre (in feature space) in the features' own units."""
    readable = {}
    for name in CLUSTER_FEATURES:
        value = float(center.get(name, 0.0))
        readable[name] = round(math.expm1(value) if CLUSTER_UNITS[name] == "log1p" else value, 3)
    return readable
