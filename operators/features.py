"""Turn a profile into the numbers the models learn from.

Two vectors, both computed as of a time from the same :class:`View`:

* :func:`classifier_features` for purchase propensity and churn risk:
  recency, frequency and monetary value, engagement, session behaviour, cart.
  Counts and amounts enter as ``log1p`` so a few heavy users do not dominate.
* :func:`cluster_features` for the behavioural clusters: rates and shares
  (conversion, cart adds and searches per session, basket size) that tell
  buyers, browsers, cart abandoners, bargain hunters, new and lapsed users
  apart. :data:`CLUSTER_UNITS` says how to read each back in its own units.

Vectors travel and wait for their labels as packed doubles (8 bytes a
value), which keeps pending training examples small in the user's state.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from operators.profiles import DAY_MS, View, VARIABLES

__all__ = [
    "CLASSIFIER_FEATURES",
    "CLUSTER_FEATURES",
    "CLUSTER_UNITS",
    "classifier_features",
    "cluster_features",
    "pack",
    "unpack",
]

CLASSIFIER_FEATURES = (
    "days_since_last_seen",
    "days_since_first_seen",
    "days_since_last_purchase",
    "has_purchased",
    "purchases_30d",
    "purchases_90d",
    "purchases_total",
    "monetary_90d",
    "revenue_total",
    "sessions_30d",
    "sessions_total",
    "events_7d",
    "events_30d",
    "engagement",
    "avg_session_s",
    "conversion_rate",
    "cart_items",
    "cart_value",
    "cart_adds_per_session",
    "searches_per_session",
    "email_clicks",
)

CLUSTER_FEATURES = (
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

_LOG1P_CAP_DAYS = 365.0


def _days(view: View, since_ms: int | None) -> float:
    if since_ms is None:
        return _LOG1P_CAP_DAYS
    return min(_LOG1P_CAP_DAYS, max(0.0, (view.now_ms - since_ms) / DAY_MS))


def _sessions(view: View) -> int:
    return view.profile.sessions_closed + view.open_sessions


def classifier_features(view: View) -> dict[str, float]:
    """Return the propensity and churn features of the profile as of ``view.now_ms``."""
    p = view.profile
    log = math.log1p
    sessions = max(1, _sessions(view))
    get = VARIABLES
    return {
        "days_since_last_seen": log(_days(view, p.last_seen_ms)),
        "days_since_first_seen": log(_days(view, p.first_seen_ms)),
        "days_since_last_purchase": log(_days(view, p.last_purchase_ms)),
        "has_purchased": float(p.purchases_total > 0),
        "purchases_30d": log(get["purchases_30d"](view)),
        "purchases_90d": log(get["purchases_90d"](view)),
        "purchases_total": log(p.purchases_total),
        "monetary_90d": log(get["monetary_90d"](view)),
        "revenue_total": log(p.revenue_total),
        "sessions_30d": log(get["sessions_30d"](view)),
        "sessions_total": log(_sessions(view)),
        "events_7d": log(get["events_7d"](view)),
        "events_30d": log(get["events_30d"](view)),
        "engagement": get["engagement"](view),
        "avg_session_s": log(get["avg_session_s"](view)),
        "conversion_rate": get["conversion_rate"](view),
        "cart_items": log(get["cart_items"](view)),
        "cart_value": log(get["cart_value"](view)),
        "cart_adds_per_session": p.cart_adds_total / sessions,
        "searches_per_session": p.searches_total / sessions,
        "email_clicks": log(p.email_clicks),
    }


def cluster_features(view: View) -> dict[str, float]:
    """Return the behavioural features that place a user in a cluster."""
    p = view.profile
    log = math.log1p
    sessions = max(1, _sessions(view))
    basket = p.revenue_total / p.purchases_total if p.purchases_total else 0.0
    return {
        "purchases_90d": log(VARIABLES["purchases_90d"](view)),
        "basket": log(basket),
        "sessions_30d": log(VARIABLES["sessions_30d"](view)),
        "events_per_session": log(p.events_total / sessions),
        "conversion_rate": VARIABLES["conversion_rate"](view),
        "cart_adds_per_session": p.cart_adds_total / sessions,
        "searches_per_session": p.searches_total / sessions,
        "email_clicks_per_session": p.email_clicks / sessions,
        "days_since_last_seen": log(_days(view, p.last_seen_ms)),
        "days_since_first_seen": log(_days(view, p.first_seen_ms)),
    }


_CLASSIFIER_LAYOUT = struct.Struct(f"<{len(CLASSIFIER_FEATURES)}d")


def pack(features: dict[str, float]) -> bytes:
    """Return classifier features as packed little-endian doubles, in feature order.

    >>> x = {name: float(n) for n, name in enumerate(CLASSIFIER_FEATURES)}
    >>> unpack(pack(x)) == x
    True
    """
    return _CLASSIFIER_LAYOUT.pack(*(features[name] for name in CLASSIFIER_FEATURES))


def unpack(data: bytes) -> dict[str, float]:
    """Return the classifier features packed by :func:`pack`."""
    return dict(zip(CLASSIFIER_FEATURES, _CLASSIFIER_LAYOUT.unpack(data), strict=True))


def describe(center: dict[Any, float]) -> dict[str, float]:
    """Return a cluster centre (in feature space) in the features' own units."""
    readable = {}
    for name in CLUSTER_FEATURES:
        value = float(center.get(name, 0.0))
        readable[name] = round(math.expm1(value) if CLUSTER_UNITS[name] == "log1p" else value, 3)
    return readable
