"""A profile's trailing windows and decayed scores: what the passing of time changes.

Split from :mod:`operators.profiles`, which keeps the profile itself and
what an event adds to it (and re-exports these names, under which the rest
of the code imports them). Here: how a score decays between two times, how
a weight observed at one time is added to a score kept as of another (so the
result does not depend on arrival order), how many of a sorted list of times
fall in a trailing window, and :func:`prune`, which frees what the trailing
windows (7, 30 and 90 days, the product window) no longer need and moves the
category affinities forward.

Two windows are packed, as most users hold one or two entries in each: a
profile's daily counts (:data:`DAY_SHIFT`: one int64 per day in an ``array``,
88 bytes for one day against 256 for a dict with its int key) and each viewed
product's times (:func:`pack_times`: 8 bytes per time in a ``bytes``, 41 bytes
for one view against 96 for a list holding an int).
"""

from __future__ import annotations

import bisect
import math
import struct
import sys
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    # Only for types: operators.profiles imports this module (mypyc still sees the classes).
    from operators.profiles import Profile, ProfileConfig

__all__ = [
    "DAY_MS",
    "DAY_SHIFT",
    "COUNT_MASK",
    "NO_DAYS",
    "NO_ENTRIES",
    "NO_ITEMS",
    "SESSION_STARTS_MS",
    "no_days",
    "no_entries",
    "no_items",
    "add_decayed",
    "decay",
    "events_from",
    "last_time",
    "pack_times",
    "prune",
    "times_of",
    "views_since",
    "window_count",
]

DAY_MS: Final = 86_400_000

#: (A static: compiled, a call reads it directly, not the name from the module's globals dict:
#: every trailing window's count bisects.)
_bisect_left: Final = bisect.bisect_left
#: A packed view's time at a byte offset: ``int.from_bytes(packed[at : at + 8], "little",
#: signed=True)`` in one call, without the slice's copy and the keyword argument (about half
#: the instructions of a product view's count).
_TIME_AT: Final = struct.Struct("<q").unpack_from

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


#: A profile's daily counts: one int64 per day, ``day << DAY_SHIFT | count``, sorted by day
#: (so by value). The count has the low 32 bits: a user would need over four billion
#: events in one day to carry into the day (a bot at 10,000 events a second sends 864 million).
DAY_SHIFT: Final = 32
COUNT_MASK: Final = (1 << DAY_SHIFT) - 1

#: The daily counts of a profile with none (new, or all pruned), shared like
#: :data:`NO_ENTRIES`: :func:`operators.profile_events.apply_event` and
#: :mod:`operators.merge` make the profile's own before writing.
NO_DAYS: Final[array[int]] = array("q")

#: Byte order of the packed view times (:func:`pack_times`): snapshots read the same on any machine.
_NATIVE_LITTLE: Final = sys.byteorder == "little"


def no_days() -> array[int]:
    """The default factory of a profile's daily counts: :data:`NO_DAYS`."""
    return NO_DAYS


def events_from(counts: array[int], first_day: int) -> int:
    """Return the events counted on ``first_day`` and after, from packed daily counts.

    >>> events_from(array("q", [3 << DAY_SHIFT | 2, 5 << DAY_SHIFT | 7]), 4)
    7
    """
    total = 0
    for packed in counts[_bisect_left(counts, first_day << DAY_SHIFT) :]:
        total += packed & COUNT_MASK
    return total


def pack_times(times: Iterable[int]) -> bytes:
    """Return sorted event times (epoch ms) as a product's packed views: 8 bytes each, little-endian.

    >>> times_of(pack_times([5, 9])).tolist(), len(pack_times([5, 9]))
    ([5, 9], 16)
    """
    packed = array("q", times)
    if not _NATIVE_LITTLE:
        packed.byteswap()
    return packed.tobytes()


def times_of(packed: bytes) -> array[int]:
    """Return a product's packed views (:func:`pack_times`) as times."""
    times: array[int] = array("q")
    times.frombytes(packed)
    if not _NATIVE_LITTLE:
        times.byteswap()
    return times


def last_time(packed: bytes) -> int:
    """Return the latest time of a product's packed views (they are never empty)."""
    time: int = _TIME_AT(packed, len(packed) - 8)[0]
    return time


def views_since(packed: bytes, since_ms: int) -> int:
    """Count a product's packed views at or after ``since_ms``, from the latest back.

    >>> views_since(pack_times([1, 5, 5, 9]), 5), views_since(pack_times([1]), 2)
    (3, 0)
    """
    end = len(packed)
    n = 0
    # (Most products hold one or two views, inside the window: a loop from the end stops early.)
    while end:
        time: int = _TIME_AT(packed, end - 8)[0]
        if time < since_ms:
            break
        end -= 8
        n += 1
    return n


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
    return len(times) - _bisect_left(times, since_ms)


def prune(profile: Profile, cfg: ProfileConfig, now_ms: int) -> None:
    """Free what the trailing windows no longer need, as of ``now_ms``.

    A container emptied here is replaced by the profile's shared empty
    (:data:`operators.profiles.NO_ENTRIES`, :data:`~operators.profiles.NO_ITEMS`).
    """
    if profile.purchases:
        del profile.purchases[: _bisect_left(profile.purchases, (now_ms - 90 * DAY_MS,))]
        if not profile.purchases:
            profile.purchases = NO_ITEMS
    if profile.session_starts:
        del profile.session_starts[: _bisect_left(profile.session_starts, now_ms - SESSION_STARTS_MS)]
        if not profile.session_starts:
            profile.session_starts = NO_ITEMS
    first_day = (now_ms - 30 * DAY_MS) // DAY_MS
    counts = profile.day_counts
    if counts and counts[0] >> DAY_SHIFT < first_day:
        del counts[: _bisect_left(counts, first_day << DAY_SHIFT)]
        if not counts:
            profile.day_counts = NO_DAYS
    cutoff = now_ms - cfg.product_window_ms
    stale: list[str] | None = None
    peak = 0
    view_times = profile.view_times
    for product, packed in view_times.items():
        n = len(packed) >> 3
        first: int = _TIME_AT(packed, 0)[0]
        if first < cutoff:  # (sorted: most have nothing to drop)
            n = views_since(packed, cutoff)
            if not n:
                if stale is None:
                    stale = []
                stale.append(product)
                continue
            view_times[product] = packed[-8 * n :]  # (a known key: the dict keeps its size and order)
        if n > peak:
            peak = n
    if stale is not None:
        for product in stale:
            del view_times[product]
        if not view_times:
            profile.view_times = NO_ENTRIES
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
