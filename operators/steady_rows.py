"""Rows of doubles that mostly repeat the first one, kept as the first row and the columns that move.

A placed score's feature rows (:func:`operators.features.scoring_vectors`: the
customer now and at each later interval if nothing happens) differ only in the
columns time moves (recency, age, what is due); in a replay every customer
holds the last ones from the last tick to the end of input (:mod:`operators.model_asks`),
the peak of its memory. :func:`compact` keeps the first row whole and, of the later
rows, only the columns where some row's bits differ from the first's (6 to 8 of
28 in bench.py's files: about 430 bytes instead of 1,120); :func:`expand` gives the
same bytes back. Columns are compared as 64-bit words, not as floats, so ``-0.0``
and ``0.0`` differ and a NaN equals itself: the rows come back bit for bit.

Layout of a compact form: one byte, the number of rows (0: the rows follow as they
were, for shapes the header cannot say); eight bytes, the mask of moving columns
(bit ``c`` for column ``c``), little-endian; the first row; then each moving column's values in the later rows, column after
column, as native 64-bit words. Never pickled or sent: it lives
in one process, from one score to the next.
"""

from __future__ import annotations

from array import array
from typing import Final

__all__ = ["compact", "expand"]

_WORD: Final = 8
_HEADER: Final = 9
#: The most rows and columns the header can say.
_MAX_ROWS: Final = 255
_MAX_WIDTH: Final = 64


def compact(rows: bytes, width: int) -> bytes:
    """Return ``rows`` (rows of ``width`` doubles each, one after another) in the compact form.

    >>> rows = array("d", [1.0, 2.0, 3.0, 1.0, 2.5, 3.0]).tobytes()
    >>> len(compact(rows, 3)), expand(compact(rows, 3), 3) == rows
    (41, True)
    """
    size = width * _WORD
    count = len(rows) // size if size else 0
    if not 0 < count <= _MAX_ROWS or width > _MAX_WIDTH or count * size != len(rows):
        return b"\x00" + rows
    first = int.from_bytes(rows[:size], "little")
    moved = 0
    for k in range(1, count):
        moved |= first ^ int.from_bytes(rows[k * size : (k + 1) * size], "little")
    # The words where some later row differs from the first (not all zero).
    differences = array("Q")
    differences.frombytes(moved.to_bytes(size, "little"))
    words = array("Q")
    words.frombytes(rows)
    later = array("Q")
    mask = 0
    for c in range(width):
        if differences[c]:
            mask |= 1 << c
            later += words[c + width :: width]  # the column in the later rows (one slice in C)
    return bytes([count]) + mask.to_bytes(_HEADER - 1, "little") + rows[:size] + later.tobytes()


def expand(packed: bytes, width: int) -> bytes:
    """Return the rows :func:`compact` was given (``width`` doubles a row)."""
    count = packed[0]
    if count == 0:
        return packed[1:]
    size = width * _WORD
    mask = int.from_bytes(packed[1:_HEADER], "little")
    first = array("Q")
    first.frombytes(packed[_HEADER : _HEADER + size])
    later = array("Q")
    later.frombytes(packed[_HEADER + size :])
    words = first * count
    start = 0
    for c in range(width):
        if mask >> c & 1:
            words[c + width :: width] = later[start : start + count - 1]
            start += count - 1
    return words.tobytes()
