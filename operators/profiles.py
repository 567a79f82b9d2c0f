"""Keep one user's profile current, event by event, in event time.

A profile holds totals, trailing windows (7, 30 and 90 days), a decayed
engagement score, decayed category affinity, per-product views in the
trailing product window, the open cart and what the user recently bought.

Every aggregate is insensitive to arrival order within the allowed lateness:
windows keep timestamps, decayed scores add an event's weight discounted
from its own time. The only order-sensitive part is the cart (an add and a
remove that arrive swapped), which follows arrival order.

Memory is bounded: trailing windows drop what falls out of them (see
:func:`~operators.profile_windows.prune`, with the decayed scores in
:mod:`operators.profile_windows`), and per-product, per-category, cart, purchase and session
lists are capped (the least recent entry goes first).

Values that rules and outputs read are computed on demand from a
:class:`View` (the profile as of a time) by the getters of
:mod:`operators.variables`, the one definition of every variable.
"""

from __future__ import annotations

import math
import sys
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from journeyflow.events import Event
# Re-exported: the rest of the code imports them from here.
from operators.profile_windows import DAY_MS, SESSION_STARTS_MS, add_decayed, decay, prune, window_count

__all__ = [
    "ProfileConfig",
    "Profile",
    "View",
    "ENGAGEMENT_WEIGHTS",
    "new_profile",
    "apply_event",
    "close_session",
    "prune",
    "window_count",
    "decay",
    "DAY_MS",
    "SESSION_STARTS_MS",
]

#: How much each event type adds to the engagement score before decay.
ENGAGEMENT_WEIGHTS = {
    "page_view": 1.0,
    "product_view": 2.0,
    "search": 1.5,
    "add_to_cart": 3.0,
    "remove_from_cart": 0.5,
    "checkout_start": 4.0,
    "purchase": 6.0,
    "email_open": 0.5,
    "email_click": 1.5,
    "login": 1.0,
    "identify": 0.5,
}

#: Engagement is reported as raw / (raw + this), a score in [0, 1): about
#: 0.5 for a user with ten page views' worth of recent activity.
ENGAGEMENT_SCALE: Final = 10.0

_MAX_VIEWS_PER_PRODUCT: Final = 64


@dataclass(frozen=True)
class ProfileConfig:
    """Half-lives, windows and caps of a profile."""

    engagement_half_life_ms: int
    affinity_half_life_ms: int
    product_window_ms: int
    max_products: int = 50
    max_categories: int = 20
    max_cart_items: int = 50
    max_purchases: int = 200
    max_sessions: int = 200


@dataclass(slots=True, init=False)
class Profile:
    """What journeyflow knows about one user's behaviour."""

    first_seen_ms: int
    last_seen_ms: int
    events_total: int = 0
    sessions_closed: int = 0
    session_ms_total: int = 0
    sessions_converted: int = 0
    purchases_total: int = 0
    revenue_total: float = 0.0
    last_purchase_ms: int | None = None
    purchases: list[tuple[int, float]] = field(default_factory=list)
    """(event time, revenue) of purchases in the last 90 days, sorted."""
    session_starts: list[int] = field(default_factory=list)
    """Start times of closed sessions in the last 30 days, sorted."""
    daily_events: dict[int, int] = field(default_factory=dict)
    """Events per day number (epoch days) for the last 30 days."""
    engagement_raw: float = 0.0
    engagement_ms: int = 0
    affinity: dict[str, float] = field(default_factory=dict)
    """Category -> decayed weight, expressed as of ``affinity_ms``."""
    affinity_ms: int = 0
    product_views: dict[str, list[int]] = field(default_factory=dict)
    """Product -> view times within the product window, sorted."""
    peak_views: int = 0
    """Most views of one product within the window: raised by each view, and
    recomputed exactly by :func:`prune` (so a drop shows at the next prune)."""
    pruned_ms: int = 0
    """When :func:`prune` last ran."""
    bought: dict[str, int] = field(default_factory=dict)
    """Product -> last purchase time, for the last 30 days."""
    cart: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Product -> (unit price, quantity) of the open cart."""
    cart_changed_ms: int | None = None
    cart_adds_total: int = 0
    searches_total: int = 0
    email_clicks: int = 0
    marketing_consent: bool = True
    personal: dict[str, str] = field(default_factory=dict)
    """Personal field -> salted hash (never the clear value)."""

    def __init__(
        self,
        first_seen_ms: int = 0,
        last_seen_ms: int = 0,
        events_total: int = 0,
        sessions_closed: int = 0,
        session_ms_total: int = 0,
        sessions_converted: int = 0,
        purchases_total: int = 0,
        revenue_total: float = 0.0,
        last_purchase_ms: int | None = None,
        purchases: list[tuple[int, float]] | None = None,
        session_starts: list[int] | None = None,
        daily_events: dict[int, int] | None = None,
        engagement_raw: float = 0.0,
        engagement_ms: int = 0,
        affinity: dict[str, float] | None = None,
        affinity_ms: int = 0,
        product_views: dict[str, list[int]] | None = None,
        peak_views: int = 0,
        pruned_ms: int = 0,
        bought: dict[str, int] | None = None,
        cart: dict[str, tuple[float, int]] | None = None,
        cart_changed_ms: int | None = None,
        cart_adds_total: int = 0,
        searches_total: int = 0,
        email_clicks: int = 0,
        marketing_consent: bool = True,
        personal: dict[str, str] | None = None,
    ) -> None:
        # Written out (init=False above): compiled by mypyc, the __init__ @dataclass generates
        # is interpreted and cost more than the rest of a new user's first event. The defaults
        # are the fields' (tests/operators/test_state_inits.py); None makes a factory's default.
        # The fields without a default take 0 here: compiled, ``cls.__new__(cls)`` runs this
        # __init__, and a snapshot is decoded that way before its fields are set (state/portable.py).
        self.first_seen_ms = first_seen_ms
        self.last_seen_ms = last_seen_ms
        self.events_total = events_total
        self.sessions_closed = sessions_closed
        self.session_ms_total = session_ms_total
        self.sessions_converted = sessions_converted
        self.purchases_total = purchases_total
        self.revenue_total = revenue_total
        self.last_purchase_ms = last_purchase_ms
        self.purchases = [] if purchases is None else purchases
        self.session_starts = [] if session_starts is None else session_starts
        self.daily_events = {} if daily_events is None else daily_events
        self.engagement_raw = engagement_raw
        self.engagement_ms = engagement_ms
        self.affinity = {} if affinity is None else affinity
        self.affinity_ms = affinity_ms
        self.product_views = {} if product_views is None else product_views
        self.peak_views = peak_views
        self.pruned_ms = pruned_ms
        self.bought = {} if bought is None else bought
        self.cart = {} if cart is None else cart
        self.cart_changed_ms = cart_changed_ms
        self.cart_adds_total = cart_adds_total
        self.searches_total = searches_total
        self.email_clicks = email_clicks
        self.marketing_consent = marketing_consent
        self.personal = {} if personal is None else personal


def new_profile(ts_ms: int) -> Profile:
    """Return an empty profile first seen at ``ts_ms``."""
    return Profile(
        first_seen_ms=ts_ms, last_seen_ms=ts_ms, engagement_ms=ts_ms, affinity_ms=ts_ms, pruned_ms=ts_ms
    )


def _evict_least_recent(entries: dict[str, Any], cap: int, recency: Callable[[Any], float]) -> None:
    while len(entries) > cap:
        del entries[min(entries, key=lambda k: recency(entries[k]))]


def apply_event(profile: Profile, cfg: ProfileConfig, event: Event) -> None:
    """Update ``profile`` with one valid, deduplicated, on-time event."""
    ts = event.ts_ms
    kind = event.type
    profile.events_total += 1
    if ts > profile.last_seen_ms:
        profile.last_seen_ms = ts
    if ts < profile.first_seen_ms:
        profile.first_seen_ms = ts
    day = ts // DAY_MS
    profile.daily_events[day] = profile.daily_events.get(day, 0) + 1
    weight = ENGAGEMENT_WEIGHTS.get(kind, 0.0)
    if weight:
        profile.engagement_raw, profile.engagement_ms = add_decayed(
            profile.engagement_raw, profile.engagement_ms, weight, ts, cfg.engagement_half_life_ms
        )
    if event.category is not None and weight:
        _add_affinity(profile, cfg, event.category, weight, ts)
    if event.consent_marketing is not None:
        profile.marketing_consent = event.consent_marketing
    for name, hashed in event.personal:
        profile.personal[name] = hashed

    if kind == "product_view":
        _add_view(profile, cfg, event.product_id, ts)  # type: ignore[arg-type]
    elif kind == "add_to_cart":
        profile.cart_adds_total += 1
        price, quantity = profile.cart.get(event.product_id, (0.0, 0))  # type: ignore[arg-type]
        profile.cart[sys.intern(event.product_id)] = (  # type: ignore[arg-type]
            event.price if event.price is not None else price,
            quantity + event.quantity,
        )
        _evict_least_recent(profile.cart, cfg.max_cart_items, lambda entry: 0)
        profile.cart_changed_ms = ts
    elif kind == "remove_from_cart":
        if event.product_id in profile.cart:
            price, quantity = profile.cart[event.product_id]
            if quantity > event.quantity:
                profile.cart[event.product_id] = (price, quantity - event.quantity)  # type: ignore[index]
            else:
                del profile.cart[event.product_id]
            profile.cart_changed_ms = ts
    elif kind == "purchase":
        _add_purchase(profile, cfg, event)
    elif kind == "email_click":
        profile.email_clicks += 1
    elif kind == "search":
        profile.searches_total += 1


def _add_affinity(profile: Profile, cfg: ProfileConfig, category: str, weight: float, ts: int) -> None:
    # Scores are kept as of `affinity_ms` and only moved forward by prune():
    # a later event adds its weight grown by the same factor the others will
    # decay by, which leaves every ratio, and so the ranking, exact.
    added = weight * math.pow(2.0, (ts - profile.affinity_ms) / cfg.affinity_half_life_ms)
    affinity = profile.affinity
    score = affinity.get(category)
    if score is not None:
        # (A known category keeps its key, already interned: no intern per event.)
        affinity[category] = score + added
        return
    affinity[sys.intern(category)] = 0.0 + added
    if len(affinity) > cfg.max_categories:
        _evict_least_recent(affinity, cfg.max_categories, lambda kept: kept)


def _add_view(profile: Profile, cfg: ProfileConfig, product: str, ts: int) -> None:
    views = profile.product_views.get(product)
    if views is None:
        # Interned: every profile that keeps a product or category shares one string
        # (each parsed event brings its own copy, about 55 bytes).
        views = profile.product_views[sys.intern(product)] = [ts]
        if len(profile.product_views) > cfg.max_products:
            _evict_least_recent(profile.product_views, cfg.max_products, lambda times: times[-1])
    else:
        insort(views, ts)
        # Counts above this cap do not matter to any sensible rule; keeping the
        # latest views stops a bot from growing the list without bound.
        if len(views) > _MAX_VIEWS_PER_PRODUCT:
            del views[:-_MAX_VIEWS_PER_PRODUCT]
    count = window_count(views, max(ts, profile.last_seen_ms) - cfg.product_window_ms)
    if count > profile.peak_views:
        profile.peak_views = count


def _add_purchase(profile: Profile, cfg: ProfileConfig, event: Event) -> None:
    ts = event.ts_ms
    profile.purchases_total += 1
    profile.revenue_total += event.revenue
    if profile.last_purchase_ms is None or ts > profile.last_purchase_ms:
        profile.last_purchase_ms = ts
    insort(profile.purchases, (ts, event.revenue))
    if len(profile.purchases) > cfg.max_purchases:
        del profile.purchases[: -cfg.max_purchases]
    bought = [item.product_id for item in event.items]
    for product in bought:
        profile.bought[sys.intern(product)] = max(ts, profile.bought.get(product, ts))
    _evict_least_recent(profile.bought, cfg.max_products, float)
    if profile.cart:
        # A purchase without line items is taken to be the whole cart.
        for product in bought or list(profile.cart):
            profile.cart.pop(product, None)
        profile.cart_changed_ms = ts


def close_session(profile: Profile, cfg: ProfileConfig, start_ms: int, end_ms: int, converted: bool) -> None:
    """Count a closed session."""
    profile.sessions_closed += 1
    profile.session_ms_total += end_ms - start_ms
    profile.sessions_converted += int(converted)
    insort(profile.session_starts, start_ms)
    if len(profile.session_starts) > cfg.max_sessions:
        del profile.session_starts[: -cfg.max_sessions]


# -- views: a profile as of a time -------------------------------------------


class View:
    """A profile as seen at ``now_ms``, with what the per-user step adds.

    A plain class, not a NamedTuple: the per-user step makes several for each
    item it handles (rules, updates, scores), and compiled by mypyc a native
    class is made without the interpreted ``__new__`` a NamedTuple runs.
    """

    __slots__ = ("profile", "cfg", "now_ms", "open_sessions")

    def __init__(self, profile: Profile, cfg: ProfileConfig, now_ms: int, open_sessions: int = 0) -> None:
        self.profile = profile
        self.cfg = cfg
        self.now_ms = now_ms
        self.open_sessions = open_sessions

    def __repr__(self) -> str:
        return f"View(now_ms={self.now_ms}, open_sessions={self.open_sessions})"
