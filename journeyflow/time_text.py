"""Event time as output text, computed with integers alone (compiled with mypyc).

:func:`format_ts` is the definition (re-exported by :mod:`journeyflow.events`,
where callers import it). Every output record carries times (a session two, a
final profile row four), so it runs several times per user at every tick and
at the end of input. It used to take the date from ``date.fromordinal(...)``
and ``isoformat()``: two calls into ``datetime`` and a date object per time,
about half of its cost. The civil date of a day number is a few integer
divisions (H. Hinnant's ``civil_from_days``, exact for every day of the
proleptic Gregorian calendar), which the compiled module does natively.
Years outside 1000-9999, where ``isoformat()`` pads or refuses, take the
``datetime`` path, so the text (or the error) stays the same for any time.
"""

from __future__ import annotations

from datetime import date
from typing import Final

__all__ = ["format_ts"]

#: ``date(1970, 1, 1).toordinal()``: the day number of the epoch.
EPOCH_ORDINAL: Final = 719163
#: ``00`` to ``99``: months, days, hours, minutes and seconds.
_TWO_DIGITS: Final = tuple([f"{i:02d}" for i in range(100)])
_MILLIS: Final = tuple([f".{i:03d}Z" for i in range(1000)])


def _day_text(days: int) -> str:
    """Return ``YYYY-MM-DD`` of ``days`` after 1970-01-01 (``date.isoformat()``'s text)."""
    z = days + 719468  # days since 0000-03-01: the leap day ends a year
    era = z // 146097  # 400-year eras (floor: negative days too)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153  # months from March
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    if year < 1000 or year > 9999:
        return date.fromordinal(days + EPOCH_ORDINAL).isoformat()
    two = _TWO_DIGITS
    return f"{year}-{two[month]}-{two[day]}"


def format_ts(ts_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC, dropping zero milliseconds.

    >>> format_ts(1795343460000)
    '2026-11-22T10:31:00Z'
    >>> format_ts(1795343460250)
    '2026-11-22T10:31:00.250Z'
    >>> format_ts(951782400000)  # a leap day
    '2000-02-29T00:00:00Z'
    """
    # (Floor division and remainder, as divmod: the same fields for any int.)
    seconds = ts_ms // 1000
    ms = ts_ms - seconds * 1000
    days = seconds // 86400
    seconds -= days * 86400
    hours = seconds // 3600
    seconds -= hours * 3600
    minutes = seconds // 60
    seconds -= minutes * 60
    two = _TWO_DIGITS
    return f"{_day_text(days)}T{two[hours]}:{two[minutes]}:{two[seconds]}{_MILLIS[ms] if ms else 'Z'}"
