"""The model features' names and their packed layout: a vector as little-endian doubles.

Split from :mod:`operators.features`, which computes the values (and
re-exports these names, under which the models and tests import them). A row
holds the classifier features (:data:`CLASSIFIER_FEATURES`) then the BG/NBD
prior's figures (:data:`PRIOR_STATS`), 8 bytes a value: vectors travel to the
models and wait for their labels in the user's state packed, which keeps
pending training examples small.
"""

from __future__ import annotations

import struct

__all__ = [
    "CLASSIFIER_FEATURES",
    "PRIOR_STATS",
    "STEADY_FEATURES",
    "TIMED",
    "PACKED",
    "LAYOUT",
    "pack",
    "unpack",
    "pack_rows",
    "unpack_rows",
    "rows_as_dicts",
    "BG_SESSIONS_X",
    "BG_SESSIONS_TX",
    "BG_PURCHASES_X",
    "BG_PURCHASES_TX",
    "BG_AGE",
    "DAYS_SINCE_LAST_SEEN",
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
    "idle_vs_usual",
    "purchase_due",
)

#: Classifier features that do not depend on the time a row is taken at: the
#: same value in every row of :func:`~operators.features.scoring_vectors` (computed once per view
#: in ``operators.features``), so the models scale them once per score.
STEADY_FEATURES = (
    "has_purchased",
    "purchases_total",
    "revenue_total",
    "sessions_total",
    "avg_session_s",
    "conversion_rate",
    "cart_items",
    "cart_value",
    "cart_adds_per_session",
    "searches_per_session",
    "email_clicks",
)
#: Positions of the other classifier features, which change along the silent path.
TIMED = tuple(i for i, name in enumerate(CLASSIFIER_FEATURES) if name not in STEADY_FEATURES)

#: What the BG/NBD prior reads (days); carried next to the classifier features.
PRIOR_STATS = (
    "bg_sessions_x",
    "bg_sessions_tx",
    "bg_purchases_x",
    "bg_purchases_tx",
    "bg_age",
)

#: The names of a packed row's values, in order.
PACKED = CLASSIFIER_FEATURES + PRIOR_STATS
#: A packed row.
LAYOUT = struct.Struct(f"<{len(PACKED)}d")

#: Positions of the prior's figures in a row of :func:`unpack_rows` (after the classifier features).
BG_SESSIONS_X, BG_SESSIONS_TX, BG_PURCHASES_X, BG_PURCHASES_TX, BG_AGE = range(len(CLASSIFIER_FEATURES), len(PACKED))
#: Position of ``days_since_last_seen`` in a row.
DAYS_SINCE_LAST_SEEN = CLASSIFIER_FEATURES.index("days_since_last_seen")


def pack(vector: dict[str, float]) -> bytes:
    """Return a :func:`~operators.features.snapshot_vector` as packed little-endian doubles, in feature order.

    >>> x = {name: float(n) for n, name in enumerate(CLASSIFIER_FEATURES + PRIOR_STATS)}
    >>> unpack(pack(x)) == x
    True
    """
    return LAYOUT.pack(*[vector[name] for name in PACKED])


def unpack(data: bytes) -> dict[str, float]:
    """Return the vector packed by :func:`pack`."""
    return dict(zip(PACKED, LAYOUT.unpack(data), strict=True))


def pack_rows(vectors: list[dict[str, float]] | tuple[dict[str, float], ...]) -> bytes:
    """Return :func:`~operators.features.snapshot_vector`-like ``vectors`` packed as :func:`~operators.features.scoring_vectors` packs its rows.

    >>> x = {name: float(n) for n, name in enumerate(CLASSIFIER_FEATURES + PRIOR_STATS)}
    >>> [row[BG_AGE] for row in unpack_rows(pack_rows([x, x]))]
    [27.0, 27.0]
    """
    return b"".join([pack(vector) for vector in vectors])


def unpack_rows(data: bytes) -> list[tuple[float, ...]]:
    """Return the rows of :func:`~operators.features.scoring_vectors`: values in :data:`CLASSIFIER_FEATURES` + :data:`PRIOR_STATS` order."""
    return list(LAYOUT.iter_unpack(data))


def rows_as_dicts(data: bytes) -> list[dict[str, float]]:
    """Return the rows of :func:`~operators.features.scoring_vectors` as :func:`~operators.features.snapshot_vector` dicts (for tests and reading)."""
    return [dict(zip(PACKED, row, strict=True)) for row in LAYOUT.iter_unpack(data)]
