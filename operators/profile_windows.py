"""A profile's trailing windows and decayed scores: what the passing of time changes.

Split from :mod:`operators.profiles`, which keeps the profile itself and
what an event adds to it (and re-exports these names, under which the rest
of the code imports them). Here: how a score decays between two times, how
a weight observed at one time is added to a score kept as of another (so the
result does not depend on arrival order), how many of a sorted list of times
fall in a trailing window, and :func:`prune`, which frees what the trailing
windows (7, 30 and 90 days, the product window) no longer need and moves the
category affinities forward.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    # Only for types: operators.profiles imports this module (mypyc still sees the classes).
    from operators.profiles import Profile, ProfileConfig

__all__ = ["DAY_MS", "NO_ENTRIES", "NO_ITEMS", "SESSION_STARTS_MS", "no_entries", "no_items", "add_decayed", "decay", "prune", "window_count"]

DAY_MS: Final = 86_400_000

#: Session starts are kept this long (``sessions_30d``, the models' session counts).
SESSION_STARTS_MS: Final = 30 * DAY_MS


#: The empty dict and list a profile's rarely filled fields (cart, purchases, bought,
#: products, categories, session starts, personal fields) start as, shared by every
#: profile until it writes one: a user with no cart holds no cart object (56-64 bytes
#: each). Never written: the only writers (:mod:`operators.profile_events`, this module,
#: :mod:`operators.merge`) make the profile's own container before writing to an empty
#: one, and put these back in place of a container they emptied
#: (tests/operators/test_profile_empties.py checks they stay empty through a replay).
NO_ENTRIES: Final[dict[Any, Any]] = {}
NO_ITEMS: Final[list[Any]] = []


def no_entries() -> dict[Any, Any]:
    """The default factory of a profile's rarely filled dict fields: :data:`NO_ENTRIES`."""
    return NO_ENTRIES


def no_items() -> list[Any]:
    """The default factory of a profile's rarely filled list fields: :data:`NO_ITEMS`."""
    return NO_ITEMS


def decay(value: float, from_ms: int, to_ms: int, half_life_ms: int) -> float:
    """Return ``value`` at ``from_ms`` decayed to ``to_ms``.

    >>> decay(8.0, 0, 2_000, 1_000)
    2.0
    """
    return value * math.pow(0.5, (to_ms - from_ms) / half_life_ms)


def add_decayed(value: float, as_of_ms: int, weight: float, at_ms: int, half_life_ms: int) -> tuple[float, int]:
    """Add ``weight`` observed at ``at_ms`` to a score kept as of ``as_of_ms``.

    The score moves forward to the later of the two times; an event older
    than the score's time adds its weight already decayed, so the result
    does not depend on arrival order.

    >>> add_decayed(4.0, 1_000, 1.0, 2_000, 1_000)
    (3.0, 2000)
    >>> add_decayed(1.0, 2_000, 4.0, 1_000, 1_000)
    (3.0, 2000)
    """
    if at_ms >= as_of_ms:
        return decay(value, as_of_ms, at_ms, half_life_ms) + weight, at_ms
    return value + decay(weight, at_ms, as_of_ms, half_life_ms), as_of_ms


def window_count(times: list[int], since_ms: int) -> int:
    """Count the times at or after ``since_ms`` in a sorted list.

    >>> window_count([1, 5, 5, 9], 5)
    3
    """
    return len(times) - bisect_left(times, since_ms)


def prune(profile: Profile, cfg: ProfileConfig, now_ms: int) -> None:
    """Free what the trailing windows no longer need, as of ``now_ms``.

    A container emptied here is replaced by the profile's shared empty
    (:data:`operators.profiles.NO_ENTRIES`, :data:`~operators.profiles.NO_ITEMS`).
    """
    if profile.purchases:
        del profile.purchases[: bisect_left(profile.purchases, (now_ms - 90 * DAY_MS,))]
        if not profile.purchases:
            profile.purchases = NO_ITEMS
    if profile.session_starts:
        del profile.session_starts[: bisect_left(profile.session_starts, now_ms - SESSION_STARTS_MS)]
        if not profile.session_starts:
            profile.session_starts = NO_ITEMS
    first_day = (now_ms - 30 * DAY_MS) // DAY_MS
    if profile.daily_events and min(profile.daily_events) < first_day:
        profile.daily_events = {d: n for d, n in profile.daily_events.items() if d >= first_day}
    cutoff = now_ms - cfg.product_window_ms
    stale: list[str] | None = None
    peak = 0
    for product, views in profile.product_views.items():
        if not views or views[0] < cutoff:  # (sorted: most lists have nothing to drop)
            del views[: bisect_left(views, cutoff)]
            if not views:
                if stale is None:
                    stale = []
                stale.append(product)
                continue
        n = len(views)
        if n > peak:
            peak = n
    if stale is not None:
        for product in stale:
            del profile.product_views[product]
        if not profile.product_views:
            profile.product_views = NO_ENTRIES
    profile.peak_views = peak
    if now_ms - profile.affinity_ms > cfg.affinity_half_life_ms:
        # Moved forward once a half-life: often enough to keep the scores far
        # from overflow, rarely enough to cost nothing.
        factor = math.pow(0.5, (now_ms - profile.affinity_ms) / cfg.affinity_half_life_ms)
        if profile.affinity:
            profile.affinity = {name: score * factor for name, score in profile.affinity.items()}
        profile.affinity_ms = now_ms
    profile.pruned_ms = max(profile.pruned_ms, now_ms)
    bought_cutoff = now_ms - 30 * DAY_MS
    if profile.bought and min(profile.bought.values()) < bought_cutoff:
        profile.bought = {p: t for p, t in profile.bought.items() if t >= bought_cutoff} or NO_ENTRIES
