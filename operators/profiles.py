"""Keep one user's profile current, event by event, in event time.

A profile holds totals, trailing windows (7, 30 and 90 days), a decayed
engagement score, decayed category affinity, per-product views in the
trailing product window, the open cart and what the user recently bought.

Every aggregate is insensitive to arrival order within the allowed lateness:
windows keep timestamps, decayed scores add an event's weight discounted
from its own time. The only order-sensitive part is the cart (an add and a
remove that arrive swapped), which follows arrival order.

What an event or a closed session changes is :mod:`operators.profile_events`.
Memory is bounded: trailing windows drop what falls out of them (see
:func:`~operators.profile_windows.prune`, with the decayed scores in
:mod:`operators.profile_windows`), and per-product, per-category, cart, purchase and session
lists are capped (the least recent entry goes first).

Values that rules and outputs read are computed on demand from a
:class:`View` (the profile as of a time) by the getters of
:mod:`operators.variables`, the one definition of every variable.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any, Final

# Re-exported: the rest of the code imports them from here.
from operators.profile_windows import (
    DAY_MS,
    DAY_SHIFT,
    NO_DAYS,
    NO_ENTRIES,
    NO_ITEMS,
    SESSION_STARTS_MS,
    decay,
    no_days,
    no_entries,
    no_items,
    pack_times,
    prune,
    window_count,
)

__all__ = [
    "ProfileConfig",
    "Profile",
    "View",
    "ENGAGEMENT_WEIGHTS",
    "new_profile",
    "from_former",
    "prune",
    "window_count",
    "decay",
    "DAY_MS",
    "SESSION_STARTS_MS",
    "NO_DAYS",
    "NO_ENTRIES",
    "NO_ITEMS",
]

#: How much each event type adds to the engagement score before decay.
ENGAGEMENT_WEIGHTS: Final[dict[str, float]] = {
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
    purchases: list[tuple[int, float]] = field(default_factory=no_items)
    """(event time, revenue) of purchases in the last 90 days, sorted."""
    session_starts: list[int] = field(default_factory=no_items)
    """Start times of closed sessions in the last 30 days, sorted."""
    day_counts: array[int] = field(default_factory=no_days)
    """Events per day number (epoch days) for the last 30 days, packed and sorted
    (:data:`~operators.profile_windows.DAY_SHIFT`); ``daily_events``, a dict, before."""
    engagement_raw: float = 0.0
    engagement_ms: int = 0
    affinity: dict[str, float] = field(default_factory=no_entries)
    """Category -> decayed weight, expressed as of ``affinity_ms``."""
    affinity_ms: int = 0
    view_times: dict[str, bytes] = field(default_factory=no_entries)
    """Product -> view times within the product window, sorted, packed
    (:func:`~operators.profile_windows.pack_times`); ``product_views``, lists, before."""
    peak_views: int = 0
    """Most views of one product within the window: raised by each view, and
    recomputed exactly by :func:`prune` (so a drop shows at the next prune)."""
    pruned_ms: int = 0
    """When :func:`prune` last ran."""
    bought: dict[str, int] = field(default_factory=no_entries)
    """Product -> last purchase time, for the last 30 days."""
    cart: dict[str, tuple[float, int]] = field(default_factory=no_entries)
    """Product -> (unit price, quantity) of the open cart."""
    cart_changed_ms: int | None = None
    cart_adds_total: int = 0
    searches_total: int = 0
    email_clicks: int = 0
    marketing_consent: bool = True
    personal: dict[str, str] = field(default_factory=no_entries)
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
        day_counts: array[int] | None = None,
        engagement_raw: float = 0.0,
        engagement_ms: int = 0,
        affinity: dict[str, float] | None = None,
        affinity_ms: int = 0,
        view_times: dict[str, bytes] | None = None,
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
        # are the fields' (tests/operators/test_state_inits.py); None makes a factory's default,
        # or the shared NO_DAYS / NO_ENTRIES / NO_ITEMS for the fields most users never fill
        # (NO_DAYS only until the first event).
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
        self.purchases = NO_ITEMS if purchases is None else purchases
        self.session_starts = NO_ITEMS if session_starts is None else session_starts
        self.day_counts = NO_DAYS if day_counts is None else day_counts
        self.engagement_raw = engagement_raw
        self.engagement_ms = engagement_ms
        self.affinity = NO_ENTRIES if affinity is None else affinity
        self.affinity_ms = affinity_ms
        self.view_times = NO_ENTRIES if view_times is None else view_times
        self.peak_views = peak_views
        self.pruned_ms = pruned_ms
        self.bought = NO_ENTRIES if bought is None else bought
        self.cart = NO_ENTRIES if cart is None else cart
        self.cart_changed_ms = cart_changed_ms
        self.cart_adds_total = cart_adds_total
        self.searches_total = searches_total
        self.email_clicks = email_clicks
        self.marketing_consent = marketing_consent
        self.personal = NO_ENTRIES if personal is None else personal


def new_profile(ts_ms: int) -> Profile:
    """Return an empty profile first seen at ``ts_ms``."""
    return Profile(
        first_seen_ms=ts_ms, last_seen_ms=ts_ms, engagement_ms=ts_ms, affinity_ms=ts_ms, pruned_ms=ts_ms
    )


def from_former(former: dict[str, Any]) -> Profile:
    """Return the profile a snapshot of the former layout held (``daily_events`` a dict,
    ``product_views`` lists: :data:`state.upgrades.UPGRADES`), those two packed, the rest as it was.

    >>> p = from_former({"daily_events": {20001: 3, 20000: 1}, "product_views": {"p": [7, 9]}})
    >>> [(v >> DAY_SHIFT, v & 0xFFFF) for v in p.day_counts], p.view_times == {"p": pack_times([7, 9])}
    ([(20000, 1), (20001, 3)], True)
    """
    values = dict(former)
    days: dict[int, int] = values.pop("daily_events", {})
    views: dict[str, list[int]] = values.pop("product_views", {})
    day_counts = array("q", [day << DAY_SHIFT | n for day, n in sorted(days.items())]) if days else None
    view_times = {product: pack_times(times) for product, times in views.items() if times} or None
    return Profile(**values, day_counts=day_counts, view_times=view_times)


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
