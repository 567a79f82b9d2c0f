"""``math.log1p``'s very float, without its call where the answer is known.

Compiled by mypyc, ``math.log1p`` is a call through the interpreter's generic
path (the argument boxed, ``math_1``'s checks, the result boxed and unboxed):
about 290 instructions, of which the C library's ``log1p`` is a small part. A
score's rows (:func:`operators.features.scoring_vectors`) take about 60, a
quarter of the rows' cost (journey20 branch, callgrind). Most of them are of a
count (sessions, events, purchases in a window) or of a zero (days since an
event at the event's own time, an empty cart, no revenue):

* :func:`log1p_count`: a count below :data:`COUNTS` reads its ``log1p`` from a
  table that ``math.log1p`` itself filled, so it is the same float;
* :func:`log1p_float`: ``log1p`` of a zero is that zero, sign kept (C99 Annex F,
  F.10.3.9, which glibc follows), returned as it is; any other value is
  ``math.log1p``'s.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["COUNTS", "log1p_count", "log1p_float"]

#: Counts below this read their ``log1p`` from the table (4,096 boxed floats, about 130 KB once).
COUNTS: Final = 4096

#: ``math.log1p(n)`` for every count ``n`` below :data:`COUNTS`, taken by ``math.log1p`` itself.
_TABLE: Final = tuple([math.log1p(n) for n in range(COUNTS)])

#: ``math.log1p`` itself, held once: compiled, ``math.log1p`` in a call reads the module's
#: attribute every time (about 260 instructions more per call).
_LOG1P: Final = math.log1p


def log1p_count(n: int) -> float:
    """Return ``math.log1p(n)`` (the same float) of an integer ``n``.

    >>> log1p_count(0), log1p_count(7) == math.log1p(7), log1p_count(10**6) == math.log1p(10**6)
    (0.0, True, True)
    """
    if 0 <= n < COUNTS:
        return _TABLE[n]
    return _LOG1P(n)


def log1p_float(x: float) -> float:
    """Return ``math.log1p(x)`` (the same float); a zero is returned as it is, without the call.

    >>> log1p_float(0.0), log1p_float(-0.0), log1p_float(2.5) == math.log1p(2.5)
    (0.0, -0.0, True)
    """
    if x == 0.0:
        return x
    return _LOG1P(x)
