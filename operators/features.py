"""Turn a profile into the numbers the models learn from.

Two vectors, both computed as of a time from the same :class:`View`:

* :func:`classifier_features` for purchase propensity and churn risk:
  recency, frequency and monetary value, engagement, session behaviour, cart,
  and absence and time since the last purchase relative to the user's own
  rhythm (which lifted churn AUC from 0.83 to 0.86 in ``journeyflow evaluate``).
  Counts and amounts enter as ``log1p`` so a few heavy users do not dominate.
* :func:`prior_stats`: what the BG/NBD prior (:mod:`operators.bgnbd`) reads,
  in days: repeat sessions and the time of the last one, purchases since the
  first visit and the time of the last one, and the customer's age.
  :func:`scoring_vectors` gives both, as of now and as of each later
  interval of the horizon if the customer stays silent (what the models
  chain into a horizon's chance, see :mod:`operators.models`).
The behavioural clusters' features are in :mod:`operators.cluster_features`.

Vectors travel and wait for their labels as packed doubles (8 bytes a
value), which keeps pending training examples small in the user's state: the
names and that layout are in :mod:`operators.feature_layout`.
"""

from __future__ import annotations

import bisect
import math
import struct
from typing import Final

from operators import feature_layout
from operators.cluster_features import CAP_DAYS as _CAP
# Every name of feature_layout.__all__, re-exported: the models and tests import them from here.
# (Named one by one: mypyc does not carry a star import's names into the compiled module.)
from operators.feature_layout import (  # noqa: F401 (re-exported by __all__ below)
    BG_AGE, BG_PURCHASES_TX, BG_PURCHASES_X, BG_SESSIONS_TX, BG_SESSIONS_X, CLASSIFIER_FEATURES, DAYS_SINCE_LAST_SEEN,
    LAYOUT, PACKED, PRIOR_STATS, STEADY_FEATURES, TIMED, pack, pack_rows, rows_as_dicts, unpack, unpack_rows,
)  # fmt: skip
from operators.labels import LabelConfig
from operators.log1p import log1p_count, log1p_float
from operators.profile_windows import COUNT_MASK, DAY_SHIFT
from operators.profiles import DAY_MS, ENGAGEMENT_SCALE, View

__all__ = [
    "prior_stats",
    "snapshot_vector",
    "snapshot_packed",
    "scoring_vectors",
    "horizon_weights",
    "horizon_steps",
    "classifier_features",
]
__all__ += feature_layout.__all__


#: (Statics: compiled, a call reads them directly, not the names from the module's globals dict;
#: a score bisects its windows about twenty times.)
_bisect_left: Final = bisect.bisect_left
_bisect_right: Final = bisect.bisect_right

_LOG_CAP: Final = math.log1p(_CAP)
"""``log1p`` of the cap on days (the days since a purchase of one who never bought)."""

#: ``k`` packed rows as one struct, for ``k`` up to 8 (a score's rows: five with the
#: default horizons), so that a score packs its rows in one call.
_ROWS: Final = tuple([struct.Struct(f"<{k * len(PACKED)}d") for k in range(9)])


def classifier_features(view: View) -> dict[str, float]:
    """Return the propensity and churn features of the profile as of ``view.now_ms``.

    Computed here from the profile's fields rather than through
    :data:`~operators.variables.PROFILE`: it runs for every score, and one
    pass over the profile costs a third of thirty separate look-ups.
    """
    return dict(zip(CLASSIFIER_FEATURES, _classifier_rows(view, (view.now_ms,))[0], strict=True))


def _classifier_rows(view: View, times: tuple[int, ...], *, with_prior: bool = False) -> list[list[float]]:
    """Return :func:`classifier_features` of ``view``'s profile as of each of ``times``, as values in feature order.

    What does not depend on the time is computed once: a score asks for five
    times (:func:`scoring_vectors`), and ticks and the end of input score
    nearly every user. Each value is the same expression as one computed
    alone; ``with_prior`` appends :func:`prior_stats` (in :data:`PRIOR_STATS`
    order) as :func:`snapshot_vector` does. Plain lists, not dicts: rows are
    packed at once (:func:`scoring_vectors`), and a dict of 28 floats per row
    costs its creation and about 1.8 KB while it lives.
    """
    p = view.profile
    # log1p without its generic call where the answer is known (operators.log1p: the same
    # floats): of a count, log1p_count; of a float, log1p_float (a zero takes no call).
    purchases = p.purchases
    n_purchases = len(purchases)
    sessions = p.sessions_closed + view.open_sessions
    per_session = max(1, sessions)
    starts = p.session_starts
    n_starts = len(starts)
    open_sessions = view.open_sessions
    closed = p.sessions_closed
    has_purchased = float(p.purchases_total > 0)
    purchases_total = log1p_count(p.purchases_total)
    revenue_total = log1p_float(p.revenue_total)
    sessions_total = log1p_count(sessions)
    avg_session_s = log1p_float(p.session_ms_total / closed / 1000) if closed else 0.0
    conversion_rate = p.sessions_converted / closed if closed else 0.0
    # (Lists, not generators: see operators.views.revenue_since.)
    cart_items = log1p_count(sum([qty for _, qty in p.cart.values()]))
    # (Summed from 0.0, not 0: the same float, and a float for an empty cart too.)
    cart_value = log1p_float(sum([price * qty for price, qty in p.cart.values()], 0.0))
    cart_adds = p.cart_adds_total / per_session
    searches = p.searches_total / per_session
    email_clicks = log1p_count(p.email_clicks)
    # Daily counts as sorted days and running totals: a window's count is two
    # look-ups (integer sums: the same value in any order).
    # (The packed counts are sorted by day: DAY_SHIFT.)
    days: list[int] = []
    running = [0]
    for packed in p.day_counts:
        days.append(packed >> DAY_SHIFT)
        running.append(running[-1] + (packed & COUNT_MASK))
    total_events = running[-1]
    half_life = view.cfg.engagement_half_life_ms
    last_seen, first_seen, last_purchase = p.last_seen_ms, p.first_seen_ms, p.last_purchase_ms
    n_bought = p.purchases_total
    prior: list[float] = []
    if with_prior:
        prior = _prior_figures(view)[:-1]  # (the age is each row's own, below)
    # A never-bought customer's days since a purchase: the cap at every time.
    log_days_bought = _LOG_CAP if last_purchase is None else 0.0
    rows = []
    for now in times:
        # (Without purchases the windows hold none: no bisect, no key tuples.)
        first_90 = _bisect_left(purchases, (now - 90 * DAY_MS,)) if n_purchases else 0
        first_30 = _bisect_left(purchases, (now - 30 * DAY_MS,), first_90) if n_purchases else 0
        sessions_30d = n_starts - _bisect_left(starts, now - 30 * DAY_MS) + open_sessions
        today = now // DAY_MS
        events_30d = total_events - running[_bisect_right(days, today - 30)]
        events_7d = total_events - running[_bisect_right(days, today - 7)]
        since = now - p.engagement_ms
        engagement_raw = p.engagement_raw * math.pow(0.5, (since if since > 0 else 0) / half_life)
        # Days since, within [0, _CAP] (_CAP when unknown): min(_CAP, max(0.0, d))
        # without the calls (ticks and the end of input do this for every user).
        d = _CAP if last_seen is None else (now - last_seen) / DAY_MS
        days_seen = (d if d < _CAP else _CAP) if d > 0.0 else 0.0
        d = _CAP if first_seen is None else (now - first_seen) / DAY_MS
        days_known = (d if d < _CAP else _CAP) if d > 0.0 else 0.0
        d = _CAP if last_purchase is None else (now - last_purchase) / DAY_MS
        days_bought = (d if d < _CAP else _CAP) if d > 0.0 else 0.0
        # Absence and the time since the last purchase mean more next to the
        # user's own rhythm: ten quiet days are nothing for a monthly visitor and
        # a lot for a daily one.
        usual_gap = days_known / per_session
        purchase_cycle = days_known / n_bought if n_bought else 0.0
        # In CLASSIFIER_FEATURES order. A count of zero is log1p(0) == 0.0 without the
        # call: the later rows of a score are mostly empty windows (the same floats).
        in_30 = n_purchases - first_30
        in_90 = n_purchases - first_90
        row = [
            log1p_float(days_seen),
            log1p_float(days_known),
            log1p_float(days_bought) if last_purchase is not None else log_days_bought,
            has_purchased,
            log1p_count(in_30),
            log1p_count(in_90),
            purchases_total,
            log1p_float(sum([r for _, r in purchases[first_90:]], 0.0)) if in_90 else 0.0,
            revenue_total,
            log1p_count(sessions_30d),
            sessions_total,
            log1p_count(events_7d),
            log1p_count(events_30d),
            engagement_raw / (engagement_raw + ENGAGEMENT_SCALE),
            avg_session_s,
            conversion_rate,
            cart_items,
            cart_value,
            cart_adds,
            searches,
            email_clicks,
            log1p_float(days_seen / (usual_gap + 0.5)),
            log1p_float(days_bought / (purchase_cycle + 1.0)) if n_bought else 0.0,
        ]
        if with_prior:
            row.extend(prior)
            age = (now - first_seen) / DAY_MS
            row.append(age if age > 0.0 else 0.0)
        rows.append(row)
    return rows


def prior_stats(view: View) -> dict[str, float]:
    """Return the BG/NBD figures of the profile as of ``view.now_ms``, in days.

    Sessions are the transactions of the activity prior: the first visit is
    the birth, later sessions are repeats. Purchases are counted from the
    first visit on (the birth of a customer is their first visit, bought or not).
    """
    return dict(zip(PRIOR_STATS, _prior_figures(view), strict=True))


def _prior_figures(view: View) -> list[float]:
    """Return :func:`prior_stats`' values in :data:`PRIOR_STATS` order (a score's rows take them without a dict)."""
    p = view.profile
    first = p.first_seen_ms
    sessions = p.sessions_closed + view.open_sessions
    return [
        float(max(0, sessions - 1)),
        max(0.0, (p.last_seen_ms - first) / DAY_MS) if sessions > 1 else 0.0,
        float(p.purchases_total),
        max(0.0, (p.last_purchase_ms - first) / DAY_MS) if p.last_purchase_ms is not None else 0.0,
        max(0.0, (view.now_ms - first) / DAY_MS),
    ]


def snapshot_vector(view: View) -> dict[str, float]:
    """Return the classifier features and the prior's figures as of ``view.now_ms``."""
    return dict(zip(PACKED, _classifier_rows(view, (view.now_ms,), with_prior=True)[0], strict=True))


def snapshot_packed(view: View) -> bytes:
    """Return :func:`snapshot_vector` packed (``pack(snapshot_vector(view))``, without the dict between)."""
    return LAYOUT.pack(*_classifier_rows(view, (view.now_ms,), with_prior=True)[0])


def horizon_weights(horizon_ms: int, interval_ms: int) -> tuple[float, ...]:
    """Return how much of each interval the horizon covers: whole ones, then the rest.

    >>> horizon_weights(30, 7)
    (1.0, 1.0, 1.0, 1.0, 0.2857142857142857)
    >>> horizon_weights(14, 7)
    (1.0, 1.0)
    """
    whole, rest = divmod(horizon_ms, interval_ms)
    return (1.0,) * whole + ((rest / interval_ms,) if rest else ())


def horizon_steps(horizon_ms: int, interval_ms: int) -> int:
    """Return how many intervals the horizon touches: ``len(horizon_weights(horizon_ms, interval_ms))``
    without building the weights (every score asks).

    >>> [horizon_steps(h, 7) == len(horizon_weights(h, 7)) for h in (1, 7, 14, 30)]
    [True, True, True, True]
    """
    return -(-horizon_ms // interval_ms)


def scoring_vectors(view: View, cfg: LabelConfig) -> bytes:
    """Return :func:`snapshot_vector` now and at each later interval of the longest horizon, packed (:func:`unpack_rows`).

    The later ones are the customer's state if nothing happens until then
    (trailing windows empty, recency and age grow): the path along which
    each interval's chance of a return is asked. Packed as one ``bytes`` of
    doubles (about 1.1 KB for five rows, against about 9 KB as five dicts of
    floats): at the end of input every user's final update holds its rows at
    once, and in a cluster they cross to the models worker pickled.
    """
    interval = cfg.interval_ms
    steps = max(horizon_steps(cfg.churn_horizon_ms, interval), horizon_steps(cfg.purchase_horizon_ms, interval))
    now = view.now_ms
    times = tuple([now + k * interval for k in range(steps)])
    rows = _classifier_rows(view, times, with_prior=True)
    if steps >= len(_ROWS):
        return b"".join([LAYOUT.pack(*row) for row in rows])
    # One call for every row (the same bytes as each row packed and joined).
    values = rows[0]
    for row in rows[1:]:
        values.extend(row)
    return _ROWS[steps].pack(*values)
