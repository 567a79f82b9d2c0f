"""What an event or a closed session changes in a profile (:class:`operators.profiles.Profile`).

Split from :mod:`operators.profiles`, which defines the profile and its
views. Every aggregate is insensitive to arrival order within the allowed
lateness (windows keep timestamps; decayed scores add an event's weight
discounted from its own time) but the cart, which follows arrival order.
Lists are capped: the least recent entry goes first.

The cart, purchases, products, categories, session starts and personal fields
start as the profile's shared empties (:data:`operators.profiles.NO_ENTRIES`,
:data:`~operators.profiles.NO_ITEMS`): this module makes a profile's own
container before it first writes one, and gives an emptied cart back.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any, Final

from journeyflow.events import Event
from operators.profile_windows import DAY_MS, DAY_SHIFT, add_decayed, last_time, pack_times, times_of, views_since
from operators.profiles import ENGAGEMENT_WEIGHTS, NO_ENTRIES, Profile, ProfileConfig

__all__ = ["MAX_VIEWS_PER_PRODUCT", "apply_event", "close_session", "count_day", "evict_least_recent"]

#: Views of one product kept per profile. Counts above this cap do not matter
#: to any sensible rule; keeping the latest views stops a bot from growing the
#: list without bound.
MAX_VIEWS_PER_PRODUCT: Final = 64


def evict_least_recent(entries: dict[str, Any], cap: int, recency: Callable[[Any], float]) -> None:
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
    count_day(profile, ts // DAY_MS)
    weight = ENGAGEMENT_WEIGHTS.get(kind, 0.0)
    if weight:
        profile.engagement_raw, profile.engagement_ms = add_decayed(
            profile.engagement_raw, profile.engagement_ms, weight, ts, cfg.engagement_half_life_ms
        )
    if event.category is not None and weight:
        _add_affinity(profile, cfg, event.category, weight, ts)
    if event.consent_marketing is not None:
        profile.marketing_consent = event.consent_marketing
    if event.personal:
        personal = profile.personal
        if not personal:
            personal = profile.personal = {}
        for name, hashed in event.personal:
            personal[name] = hashed

    if kind == "product_view":
        _add_view(profile, cfg, event.product_id, ts)  # type: ignore[arg-type]
    elif kind == "add_to_cart":
        profile.cart_adds_total += 1
        cart = profile.cart
        if not cart:
            cart = profile.cart = {}
        price, quantity = cart.get(event.product_id, (0.0, 0))  # type: ignore[arg-type]
        cart[sys.intern(event.product_id)] = (  # type: ignore[arg-type]
            event.price if event.price is not None else price,
            quantity + event.quantity,
        )
        evict_least_recent(cart, cfg.max_cart_items, lambda entry: 0)
        profile.cart_changed_ms = ts
    elif kind == "remove_from_cart":
        if event.product_id in profile.cart:
            price, quantity = profile.cart[event.product_id]
            if quantity > event.quantity:
                profile.cart[event.product_id] = (price, quantity - event.quantity)  # type: ignore[index]
            else:
                del profile.cart[event.product_id]
                if not profile.cart:
                    profile.cart = NO_ENTRIES
            profile.cart_changed_ms = ts
    elif kind == "purchase":
        _add_purchase(profile, cfg, event)
    elif kind == "email_click":
        profile.email_clicks += 1
    elif kind == "search":
        profile.searches_total += 1


def count_day(profile: Profile, day: int) -> None:
    """Count one event on ``day`` (epoch day number) in the profile's packed daily counts."""
    counts = profile.day_counts
    n = len(counts)
    if not n:
        # (The shared empty NO_DAYS: this profile's own, of exactly one day.)
        profile.day_counts = array("q", [day << DAY_SHIFT | 1])
        return
    # (The last count read once and written back: compiled, each item of the array read
    # or written is a call, and `counts[n - 1] += 1` is a read, an add and a write.)
    last_packed = counts[n - 1]
    last = last_packed >> DAY_SHIFT
    if last == day:  # (most events: today's count)
        counts[n - 1] = last_packed + 1
    elif last < day:
        counts.append(day << DAY_SHIFT | 1)
    else:
        at = bisect_left(counts, day << DAY_SHIFT)
        if counts[at] >> DAY_SHIFT == day:
            counts[at] += 1
        else:
            counts.insert(at, day << DAY_SHIFT | 1)


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
    if not affinity:
        affinity = profile.affinity = {}
    affinity[sys.intern(category)] = 0.0 + added
    if len(affinity) > cfg.max_categories:
        evict_least_recent(affinity, cfg.max_categories, lambda kept: kept)


def _add_view(profile: Profile, cfg: ProfileConfig, product: str, ts: int) -> None:
    view_times = profile.view_times
    packed = view_times.get(product)
    if packed is None:
        # Interned: every profile that keeps a product or category shares one string
        # (each parsed event brings its own copy, about 55 bytes).
        if not view_times:
            view_times = profile.view_times = {}
        packed = view_times[sys.intern(product)] = ts.to_bytes(8, "little", signed=True)
        if len(view_times) > cfg.max_products:
            evict_least_recent(view_times, cfg.max_products, last_time)
    else:
        if ts >= last_time(packed):
            packed += ts.to_bytes(8, "little", signed=True)
        else:
            times = times_of(packed)
            insort(times, ts)
            packed = pack_times(times)
        # Counts above this cap do not matter to any sensible rule; keeping the
        # latest views stops a bot from growing them without bound.
        if len(packed) > 8 * MAX_VIEWS_PER_PRODUCT:
            packed = packed[-8 * MAX_VIEWS_PER_PRODUCT :]
        view_times[product] = packed
    count = views_since(packed, max(ts, profile.last_seen_ms) - cfg.product_window_ms)
    if count > profile.peak_views:
        profile.peak_views = count


def _add_purchase(profile: Profile, cfg: ProfileConfig, event: Event) -> None:
    ts = event.ts_ms
    profile.purchases_total += 1
    profile.revenue_total += event.revenue
    if profile.last_purchase_ms is None or ts > profile.last_purchase_ms:
        profile.last_purchase_ms = ts
    if profile.purchases:
        insort(profile.purchases, (ts, event.revenue))
        if len(profile.purchases) > cfg.max_purchases:
            del profile.purchases[: -cfg.max_purchases]
    else:
        profile.purchases = [(ts, event.revenue)]
    bought = [item.product_id for item in event.items]
    if bought:
        if not profile.bought:
            profile.bought = {}
        for product in bought:
            profile.bought[sys.intern(product)] = max(ts, profile.bought.get(product, ts))
        evict_least_recent(profile.bought, cfg.max_products, float)
    if profile.cart:
        # A purchase without line items is taken to be the whole cart.
        for product in bought or list(profile.cart):
            profile.cart.pop(product, None)
        if not profile.cart:
            profile.cart = NO_ENTRIES
        profile.cart_changed_ms = ts


def close_session(profile: Profile, cfg: ProfileConfig, start_ms: int, end_ms: int, converted: bool) -> None:
    """Count a closed session."""
    profile.sessions_closed += 1
    profile.session_ms_total += end_ms - start_ms
    profile.sessions_converted += int(converted)
    if profile.session_starts:
        insort(profile.session_starts, start_ms)
        if len(profile.session_starts) > cfg.max_sessions:
            del profile.session_starts[: -cfg.max_sessions]
    else:
        profile.session_starts = [start_ms]
