"""Join what is known about an anonymous device into its customer's state (identity stitching).

Each function merges one part of the per-user state, ``other`` (the device's)
into ``into`` (the customer's), as if every event of both had been the
customer's from the start:

* counts and totals add; trailing windows (purchases, sessions, daily
  events, per-product views) combine in event time, so three anonymous views
  and one after login within the product window count four;
* decayed scores (engagement, category affinity) are brought to a common time
  and added, which is exactly what applying both histories would give;
* open sessions that touch (within the gap) become one, so a visit that began
  anonymous and went on after login is one session;
* the open carts join (quantities add), recent purchases and cooldowns keep
  the later time, pending model labels keep one snapshot per moment;
* nothing is counted twice: the two states never share an event (the device's
  events reached only the device until the link), and their dedup ids join.

The functions change ``into`` in place and leave ``other`` unusable. A profile's
empty fields may be the shared empties (:data:`operators.profiles.NO_ENTRIES`):
they are replaced before anything is added to them.
"""

from __future__ import annotations

import math
from array import array

from operators.dedup import DedupConfig, DedupState, held_keys, held_times, reindex
from operators.labels import Pending
from operators.profile_events import MAX_VIEWS_PER_PRODUCT, evict_least_recent
from operators.profile_windows import COUNT_MASK, DAY_SHIFT, last_time, pack_times, times_of, views_since
from operators.profiles import NO_DAYS, NO_ENTRIES, NO_ITEMS, Profile, ProfileConfig
from operators.sessions import Session, SessionConfig, _merge

__all__ = ["merge_dedup", "merge_sessions", "merge_profile", "merge_pending", "merge_latest"]


def merge_dedup(into: DedupState, other: DedupState, cfg: DedupConfig) -> None:
    """Remember both sets of ids, oldest first, within the cap.

    >>> from operators.dedup import held_times, id_key, is_duplicate, remember
    >>> a, b, cfg = DedupState(), DedupState(), DedupConfig(window_ms=10, max_ids=2)
    >>> remember(a, cfg, id_key("e1"), 1); remember(a, cfg, id_key("e3"), 3); remember(b, cfg, id_key("e2"), 2)
    >>> merge_dedup(a, b, cfg)
    >>> list(held_times(a)), [is_duplicate(a, id_key(e)) for e in ("e1", "e2", "e3")]
    ([2, 3], [False, True, True])
    """
    # As a dict of the device's ids updated with the customer's: an id in both
    # keeps the device's place and the customer's time; then a stable sort by time.
    joined = dict(zip(held_keys(other), held_times(other)))
    joined.update(zip(held_keys(into), held_times(into)))
    kept = sorted(joined.items(), key=lambda item: item[1])[-cfg.max_ids :]
    ids = array("q", [key for key, _ in kept])
    ids.extend([ts for _, ts in kept])
    into.ids = ids
    reindex(into)


def merge_sessions(into: list[Session], other: list[Session], cfg: SessionConfig) -> None:
    """Add ``other``'s open sessions; sessions within the gap of each other become one.

    >>> cfg = SessionConfig(gap_ms=100, lateness_ms=0)
    >>> a, b = [Session(0, 50, events=2)], [Session(120, 130, events=1), Session(500, 500, events=1)]
    >>> merge_sessions(a, b, cfg)
    >>> [(s.start_ms, s.end_ms, s.events) for s in a]
    [(0, 130, 3), (500, 500, 1)]
    """
    joined: list[Session] = []
    for session in sorted([*into, *other], key=lambda s: s.start_ms):
        last = joined[-1] if joined else None
        if last is not None and session.start_ms - cfg.gap_ms <= last.end_ms:
            _merge(last, session, cfg.max_carted)
        else:
            joined.append(session)
    into[:] = joined


def merge_profile(into: Profile, other: Profile, cfg: ProfileConfig) -> None:
    """Add ``other``'s history to ``into`` (see the module docstring)."""
    into.first_seen_ms = min(into.first_seen_ms, other.first_seen_ms)
    later = other.last_seen_ms > into.last_seen_ms
    into.last_seen_ms = max(into.last_seen_ms, other.last_seen_ms)
    into.events_total += other.events_total
    into.sessions_closed += other.sessions_closed
    into.session_ms_total += other.session_ms_total
    into.sessions_converted += other.sessions_converted
    into.purchases_total += other.purchases_total
    into.revenue_total += other.revenue_total
    if other.last_purchase_ms is not None and (
        into.last_purchase_ms is None or other.last_purchase_ms > into.last_purchase_ms
    ):
        into.last_purchase_ms = other.last_purchase_ms
    into.purchases = sorted([*into.purchases, *other.purchases])[-cfg.max_purchases :] or NO_ITEMS
    into.session_starts = sorted([*into.session_starts, *other.session_starts])[-cfg.max_sessions :] or NO_ITEMS
    into.day_counts = _merge_days(into.day_counts, other.day_counts)
    into.engagement_raw, into.engagement_ms = _add_scores(
        into.engagement_raw, into.engagement_ms, other.engagement_raw, other.engagement_ms, cfg.engagement_half_life_ms
    )
    _merge_affinity(into, other, cfg)
    if other.view_times and not into.view_times:
        into.view_times = {}
    for product, packed in other.view_times.items():
        times = sorted([*times_of(into.view_times.get(product, b"")), *times_of(packed)])
        into.view_times[product] = pack_times(times[-MAX_VIEWS_PER_PRODUCT:])
    evict_least_recent(into.view_times, cfg.max_products, last_time)
    # An upper bound until the next prune, like the running peak of each profile.
    cutoff = into.last_seen_ms - cfg.product_window_ms
    now = max([views_since(packed, cutoff) for packed in into.view_times.values()], default=0)
    into.peak_views = max(into.peak_views, other.peak_views, now)
    into.pruned_ms = min(into.pruned_ms, other.pruned_ms)
    if other.bought and not into.bought:
        into.bought = {}
    for product, ts in other.bought.items():
        into.bought[product] = max(ts, into.bought.get(product, ts))
    if other.cart and not into.cart:
        into.cart = {}
    for product, (price, quantity) in other.cart.items():
        _, held = into.cart.get(product, (price, 0))
        into.cart[product] = (price, held + quantity)
    evict_least_recent(into.cart, cfg.max_cart_items, lambda entry: 0)
    if other.cart_changed_ms is not None and (into.cart_changed_ms is None or other.cart_changed_ms > into.cart_changed_ms):
        into.cart_changed_ms = other.cart_changed_ms
    into.cart_adds_total += other.cart_adds_total
    into.searches_total += other.searches_total
    into.email_clicks += other.email_clicks
    if later:
        # The latest word on marketing wins, as it would event by event.
        into.marketing_consent = other.marketing_consent
    into.personal = {**other.personal, **into.personal} or NO_ENTRIES


def merge_pending(into: list[Pending], other: list[Pending]) -> None:
    """Keep one pending snapshot per moment, the customer's where both have one.

    >>> a, b = [Pending(7, b"u")], [Pending(7, b"a"), Pending(14, b"a")]
    >>> merge_pending(a, b)
    >>> [(p.ts_ms, p.features) for p in a]
    [(7, b'u'), (14, b'a')]
    """
    taken = {p.ts_ms for p in into}
    into[:] = sorted([*into, *(p for p in other if p.ts_ms not in taken)], key=lambda p: p.ts_ms)


def merge_latest(into: dict[str, int], other: dict[str, int]) -> None:
    """Keep the later time of each key (cooldowns: the latest firing counts).

    >>> a = {"r1": 5}
    >>> merge_latest(a, {"r1": 9, "r2": 1})
    >>> a
    {'r1': 9, 'r2': 1}
    """
    for key, ts in other.items():
        if ts > into.get(key, ts - 1):
            into[key] = ts


def _merge_days(into: array[int], other: array[int]) -> array[int]:
    """Return packed daily counts (:data:`~operators.profile_windows.DAY_SHIFT`) adding both."""
    if not other:
        return into
    by_day: dict[int, int] = {}
    for packed in (*into, *other):
        day = packed >> DAY_SHIFT
        by_day[day] = by_day.get(day, 0) + (packed & COUNT_MASK)
    return array("q", [day << DAY_SHIFT | n for day, n in sorted(by_day.items())]) or NO_DAYS


def _add_scores(a: float, a_ms: int, b: float, b_ms: int, half_life_ms: int) -> tuple[float, int]:
    """Add two decayed scores kept as of different times, as of the later one."""
    at = max(a_ms, b_ms)
    return a * math.pow(0.5, (at - a_ms) / half_life_ms) + b * math.pow(0.5, (at - b_ms) / half_life_ms), at


def _merge_affinity(into: Profile, other: Profile, cfg: ProfileConfig) -> None:
    # Affinities are kept as of `affinity_ms` (see profiles._add_affinity):
    # bring the device's to the customer's time, then add.
    factor = math.pow(0.5, (into.affinity_ms - other.affinity_ms) / cfg.affinity_half_life_ms)
    if other.affinity and not into.affinity:
        into.affinity = {}
    for category, score in other.affinity.items():
        into.affinity[category] = into.affinity.get(category, 0.0) + score * factor
    evict_least_recent(into.affinity, cfg.max_categories, lambda score: score)

