"""When simulated users come and how their times are written: the time constants of a
session, the hour-of-day profile of session starts, and a fast RFC 3339 formatter.

Part of the generator (:mod:`journeyflow.generator`).
"""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect_right
from datetime import datetime, timezone
from functools import cache

__all__ = [
    "CLICK_GAP_RANGE_MS",
    "DAY_MS",
    "HOUR_MS",
    "MAX_BROWSE_EVENTS",
    "MAX_CART_LINES",
    "MINUTE_MS",
    "MIN_CLICK_GAP_MS",
    "NEW_VISITOR_WINDOW_MS",
    "SECOND_MS",
    "SESSION_SPAN_MS",
    "SPACING_MS",
    "TsFormatter",
    "one_start",
    "session_starts",
]

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# A session never lasts longer than SESSION_SPAN_MS and starts are at least SPACING_MS apart,
# so the silence between two sessions is always at least 45 minutes.
SESSION_SPAN_MS = 90 * MINUTE_MS
_SESSION_GAP_MS = 45 * MINUTE_MS
SPACING_MS = SESSION_SPAN_MS + _SESSION_GAP_MS
MIN_CLICK_GAP_MS = 10 * SECOND_MS
CLICK_GAP_RANGE_MS = 3 * MINUTE_MS - MIN_CLICK_GAP_MS
_MAX_SESSION_EVENTS = 40
# Room kept for the events that are not browsing: two email events, a consent, a login, an
# add_to_cart, the checkout and the purchase, a forget.
MAX_BROWSE_EVENTS = _MAX_SESSION_EVENTS - 8
MAX_CART_LINES = 8

NEW_VISITOR_WINDOW_MS = 14 * DAY_MS

# Hour-of-day weights in UTC: night trough, lunch bump, evening peak; weekends start later.
_WEEKDAY_HOURS = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.75, 0.85, 0.9, 0.95,
    1.1, 1.0, 0.9, 0.9, 0.95, 1.1, 1.35, 1.7, 1.9, 1.8, 1.3, 0.6,
)  # fmt: skip
_WEEKEND_HOURS = (
    0.35, 0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.3, 0.55, 0.85, 1.1, 1.25,
    1.3, 1.3, 1.25, 1.2, 1.2, 1.25, 1.35, 1.55, 1.7, 1.6, 1.2, 0.7,
)  # fmt: skip
_WEEKDAY_CUM = tuple(itertools.accumulate(_WEEKDAY_HOURS))
_WEEKEND_CUM = tuple(itertools.accumulate(_WEEKEND_HOURS))
# Session volume per weekday, Monday first.
_DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.9, 1.2, 1.3)


@cache
def _hms_table() -> tuple[str, ...]:
    """Return ``"HH:MM:SS"`` for every second of a day, so formatting is two lookups."""
    sixty = [f"{n:02d}" for n in range(60)]
    hours = [f"{n:02d}:" for n in range(24)]
    minutes = [f"{n}:" for n in sixty]
    return tuple(h + m + s for h in hours for m in minutes for s in sixty)


@cache
def _millis_table() -> tuple[str, ...]:
    """Return ``".mmmZ"`` for every millisecond of a second."""
    return tuple(f".{ms:03d}Z" for ms in range(1000))


class TsFormatter:
    """Format epoch milliseconds as RFC 3339 UTC with millisecond precision.

    >>> TsFormatter().format(1785679509123)
    '2026-08-02T14:05:09.123Z'
    """

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._hms = _hms_table()
        self._millis = _millis_table()

    def format(self, ts_ms: int) -> str:
        """Return ``ts_ms`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
        day, rest = divmod(ts_ms, DAY_MS)
        second, milli = divmod(rest, 1000)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%dT")
            self._days[day] = prefix
        return prefix + self._hms[second] + self._millis[milli]


def _start_in_day(rng: random.Random, day: int) -> int:
    """Draw a session start on epoch day ``day`` from the hour-of-day profile of its weekday."""
    cum = _WEEKEND_CUM if (day + 3) % 7 >= 5 else _WEEKDAY_CUM  # 1970-01-01 was a Thursday
    hour = bisect_right(cum, rng.random() * cum[-1])
    return day * DAY_MS + hour * HOUR_MS + int(rng.random() * HOUR_MS)


def session_starts(rng: random.Random, rate: float, first_ms: int, end_ms: int) -> list[int]:
    """Draw session starts in ``[first_ms, end_ms)`` from ``rate`` sessions per day.

    Each calendar day (UTC) gets a Poisson number of sessions, scaled by the weekday, at hours
    drawn from the daily profile. Starts closer than ``SPACING_MS`` to the previous one are
    dropped, which keeps sessions apart and only thins the busiest users a little.
    """
    random_ = rng.random
    # Knuth's Poisson method; the chance of no session is precomputed per weekday because most
    # days have none and then one draw settles the day.
    no_session = [math.exp(-rate * factor) for factor in _DAY_FACTOR]
    starts: list[int] = []
    previous = -SPACING_MS
    for day in range(first_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
        limit = no_session[(day + 3) % 7]
        product = random_()
        count = 0
        while product > limit:
            count += 1
            product *= random_()
        if not count:
            continue
        day_starts = [_start_in_day(rng, day) for _ in range(count)]
        if count > 1:
            day_starts.sort()
        for start in day_starts:
            if first_ms <= start < end_ms and start >= previous + SPACING_MS:
                starts.append(start)
                previous = start
    return starts


def one_start(rng: random.Random, first_ms: int, end_ms: int) -> int:
    """Draw one session start in ``[first_ms, end_ms)``, following the daily profile when it fits."""
    for _ in range(8):
        start = _start_in_day(rng, (first_ms + int(rng.random() * (end_ms - first_ms))) // DAY_MS)
        if first_ms <= start < end_ms:
            return start
    return first_ms + int(rng.random() * (end_ms - first_ms))
