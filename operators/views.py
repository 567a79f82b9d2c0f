"""What a profile shows as of a time: the computations behind the variables and the output row.

The registry (:mod:`operators.variables`) names each variable and points to
one of these functions; :func:`to_fields` writes the whole row that
``profiles.jsonl`` and the Redis hash hold, from the same registry.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Final

from journeyflow.events import format_ts
from operators.profile_windows import events_from, views_since
from operators.profiles import DAY_MS, ENGAGEMENT_SCALE, View, decay, window_count
from operators.rounding import round_digits

if TYPE_CHECKING:
    from operators.variables import EventScope, SessionScope

__all__ = ["to_fields"]

#: (A static: compiled, a call reads it directly, not the name from the module's globals dict.)
_bisect_left: Final = bisect.bisect_left


def purchases_since(view: View, days: int) -> int:
    purchases = view.profile.purchases
    if not purchases:
        return 0  # (most users: no bisect, no key tuple)
    return len(purchases) - _bisect_left(purchases, (view.now_ms - days * DAY_MS,))


def revenue_since(view: View, days: int) -> float:
    purchases = view.profile.purchases
    if not purchases:
        return 0.0  # what the sum below gives
    first = _bisect_left(purchases, (view.now_ms - days * DAY_MS,))
    # The float start keeps the type when there is nothing to add: CEL does
    # not mix ints and doubles, so a rule like `monetary_30d * 2.0` needs a double.
    # (Lists, not generators, here and below: compiled by mypyc a generator is an
    # object made and resumed per value; sum() adds the same values in the same order.)
    return round_digits(sum([r for _, r in purchases[first:]], 0.0), 2)


def events_since(view: View, days: int) -> int:
    return events_from(view.profile.day_counts, view.now_ms // DAY_MS - days + 1)


def days_between(from_ms: int | None, to_ms: int) -> float:
    # Hundredths of a day (about 15 minutes): precise enough for any rule over
    # days, and a value that does not change with every click, so rules over
    # it are not re-evaluated on every event.
    if from_ms is None:
        return -1.0
    return round_digits(max(0, to_ms - from_ms) / DAY_MS, 2)


def engagement(view: View) -> float:
    p = view.profile
    raw = decay(p.engagement_raw, p.engagement_ms, max(view.now_ms, p.engagement_ms), view.cfg.engagement_half_life_ms)
    return round_digits(raw / (raw + ENGAGEMENT_SCALE), 4)


def top_category(view: View) -> str:
    # What max(affinity, key=affinity.__getitem__) returns (the first of the highest,
    # replaced only by a greater score), without a bound method and max's key calls:
    # every update and final row reads it.
    best = ""
    best_score = 0.0
    first = True
    for name, score in view.profile.affinity.items():
        if first or score > best_score:
            best, best_score, first = name, score, False
    return best


def cart_items(view: View) -> int:
    if not view.profile.cart:
        return 0
    return sum([qty for _, qty in view.profile.cart.values()])


def cart_value(view: View) -> float:
    if not view.profile.cart:
        return 0.0  # what the sum below gives
    return round_digits(sum([price * qty for price, qty in view.profile.cart.values()], 0.0), 2)


def sessions_total(view: View) -> int:
    return view.profile.sessions_closed + view.open_sessions


def sessions_30d(view: View) -> int:
    return window_count(view.profile.session_starts, view.now_ms - 30 * DAY_MS) + view.open_sessions


def avg_session_s(view: View) -> float:
    p = view.profile
    return round_digits(p.session_ms_total / p.sessions_closed / 1000, 1) if p.sessions_closed else 0.0


def conversion_rate(view: View) -> float:
    p = view.profile
    return round_digits(p.sessions_converted / p.sessions_closed, 4) if p.sessions_closed else 0.0


def event_product_views(scope: EventScope) -> int:
    """Views of the event's product in the trailing product window (this one included)."""
    product = scope.event.product_id
    packed = scope.view.profile.view_times.get(product) if product is not None else None
    if packed is None:
        return 0
    return views_since(packed, scope.view.now_ms - scope.view.cfg.product_window_ms)


def event_product_bought(scope: EventScope) -> bool:
    product = scope.event.product_id
    return product is not None and product in scope.view.profile.bought


def abandoned(scope: SessionScope) -> list[str]:
    """Products added during the session and still in the cart when it closed."""
    cart = scope.profile.cart
    return [p for p in scope.session.carted if p in cart]


def _product_views_in_window(view: View) -> dict[str, int]:
    since = view.now_ms - view.cfg.product_window_ms
    counts = {}
    for product, packed in view.profile.view_times.items():
        n = views_since(packed, since)
        if n:
            counts[product] = n
    return counts


def to_fields(view: View) -> dict[str, Any]:
    """Return the whole profile as JSON-ready fields (``profiles.jsonl``, Redis)."""
    from operators.variables import PROFILE

    p = view.profile
    fields = {name: entry.get(view) for name, entry in PROFILE.items()}
    fields["recency_days"] = None if p.last_purchase_ms is None else fields["recency_days"]
    fields["first_seen"] = format_ts(p.first_seen_ms)
    fields["last_seen"] = format_ts(p.last_seen_ms)
    fields["last_purchase"] = None if p.last_purchase_ms is None else format_ts(p.last_purchase_ms)
    # Each score decayed as decay() decays it (its factor once: decay(1.0, ...) is the
    # factor itself), highest first.
    factor = decay(1.0, p.affinity_ms, max(view.now_ms, p.affinity_ms), view.cfg.affinity_half_life_ms)
    fields["category_affinity"] = {
        name: round_digits(score * factor, 4) for name, score in sorted(p.affinity.items(), key=lambda kv: -kv[1])
    }
    fields["product_views_24h"] = _product_views_in_window(view)
    fields["cart"] = {"products": sorted(p.cart), "value": fields["cart_value"]}
    for name, hashed in sorted(p.personal.items()):
        fields[name.replace(".", "_") + "_hash"] = hashed
    return fields
