"""Event time of the common wire form, read without building a datetime (compiled with mypyc).

Producers send ``ts`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (or without the
milliseconds). :func:`~journeyflow.events.parse_ts`, the definition, reads any
RFC 3339 form through ``datetime.fromisoformat``, then ``timestamp()``: about
a fifth of the parser's time per line. :func:`utc_ms` reads only the common
form, checking every character and every field's range, and says "not mine"
(``-1``) for anything else, which then goes to ``parse_ts``: so a message is
accepted or refused, and its reason worded, exactly as before.

Why the value is the same: for a time with whole milliseconds ``ms``,
``parse_ts`` takes ``round(timestamp() * 1000)``, where ``timestamp()`` is
the microseconds divided by 10**6, correctly rounded; below year 2100 the
float is within a few units of 2**-10 of ``ms``, so ``round`` gives ``ms``.
"""

from __future__ import annotations

from typing import Final

from journeyflow.events import EPOCH_ORDINAL, MAX_TS_MS

__all__ = ["utc_ms"]

# What every event reads from modules that are not compiled, held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_EPOCH_ORDINAL: Final = EPOCH_ORDINAL
_MAX_TS_MS: Final = MAX_TS_MS

#: Days before each month (1-based) in a common year, and each month's length.
_BEFORE_MONTH: Final = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_MONTH_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _number(text: str, start: int, end: int) -> int:
    """Return the decimal number ``text[start:end]``, or -1 if a character is not an ASCII digit."""
    n = 0
    for i in range(start, end):
        digit = ord(text[i]) - 48
        if digit < 0 or digit > 9:
            return -1
        n = n * 10 + digit
    return n


def utc_ms(text: str) -> int:
    """Return the epoch milliseconds of ``text`` in the common form, or -1 for any other text
    (then :func:`~journeyflow.events.parse_ts` decides).

    >>> utc_ms("2026-11-22T10:31:00Z"), utc_ms("2026-11-22T10:31:00.250Z")
    (1795343460000, 1795343460250)
    >>> utc_ms("2026-02-29T00:00:00Z"), utc_ms("2026-11-22T11:31:00+01:00"), utc_ms("1969-12-31T23:59:59Z")
    (-1, -1, -1)
    """
    size = len(text)
    if size == 24:
        if text[19] != ".":
            return -1
        ms = _number(text, 20, 23)
        if ms < 0:
            return -1
    elif size == 20:
        ms = 0
    else:
        return -1
    if (
        text[size - 1] != "Z"
        or text[4] != "-"
        or text[7] != "-"
        or text[10] != "T"
        or text[13] != ":"
        or text[16] != ":"
    ):
        return -1
    year = _number(text, 0, 4)
    month = _number(text, 5, 7)
    day = _number(text, 8, 10)
    hour = _number(text, 11, 13)
    minute = _number(text, 14, 16)
    second = _number(text, 17, 19)
    # (-1 from a non-digit fails these too.)
    if year < 1970 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return -1
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return -1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _MONTH_DAYS[month] + (1 if leap and month == 2 else 0):
        return -1
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 - (_EPOCH_ORDINAL - 1) + _BEFORE_MONTH[month] + day - 1
    if leap and month > 2:
        days += 1
    result = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms
    return result if result < _MAX_TS_MS else -1
