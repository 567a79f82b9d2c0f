"""Round a float to decimal places: ``round(x, digits)``'s very float, without its decimal conversion.

CPython's ``round(x, digits)`` converts ``x`` to a decimal string and back
(``_Py_dg_dtoa`` then ``_Py_dg_strtod``): about 2,900 instructions a call,
7% of the per-user step's instructions (callgrind, journey20 branch), where
the variables and the output row round days, rates and amounts (an update's
twelve values, every segment judgement of a customer who bought).

:func:`round_digits` gives the same float from binary arithmetic wherever it
can prove the answer, and asks ``round`` itself elsewhere. The proof: ``y =
x * 10**digits`` is the exact product rounded once, so it is within half an
ulp of it (at most ``y * 2**-53``). When ``y``'s fraction is further than
``y * 2**-52`` from one half, the exact product rounds to the same integer
``k`` as ``y`` does, and that ``k`` is the integer ``round`` finds (its
decimal digits). ``round`` then returns the float nearest to ``k / 10**digits``;
so does the division ``k / 10.0**digits``, IEEE division being correctly
rounded and both operands exact (``k < 2**52``, ``10**digits`` for digits up to
15). A negative value rounds as its size, negated, as
``round`` does; a zero is returned as it is (its sign kept, as ``round``
keeps it). Not proved, so left to ``round``: a fraction that close to a half
(ties: ``round`` goes to the even digit), large, infinite or NaN values.
"""

from __future__ import annotations

from typing import Final

__all__ = ["round_digits"]

#: ``10.0 ** digits`` for digits 0 to 15 (all exact floats).
_SCALES: Final = tuple([10.0**digits for digits in range(16)])

#: Above this, ``y``'s integer part may not be exact: left to ``round``.
_EXACT: Final = 2.0**52

#: Twice the relative error of one rounded product: the margin a fraction must keep from one half.
_MARGIN: Final = 2.0**-52


def round_digits(x: float, digits: int) -> float:
    """Return ``round(x, digits)`` (the same float) for ``digits`` from 0 to 15.

    >>> round_digits(2.675, 2), round(2.675, 2)  # (2.675 is 2.67499999... as a float)
    (2.67, 2.67)
    >>> round_digits(0.125, 2), round_digits(0.375, 2)  # ties: to the even digit, as round()
    (0.12, 0.38)
    >>> round_digits(-0.001, 2), round_digits(1 / 3, 4)
    (-0.0, 0.3333)
    """
    scale = _SCALES[digits]
    y = x * scale
    size = y if y >= 0.0 else -y
    if 0.0 < size < _EXACT:
        whole = int(size)  # (positive: the floor)
        frac = size - whole  # (exact)
        if abs(frac - 0.5) > size * _MARGIN:
            rounded = (whole + 1 if frac > 0.5 else whole) / scale
            # (round() is symmetric: a negative value rounds as its size, negated; -0.0 included.)
            return rounded if y > 0.0 else -rounded
    elif size == 0.0:
        return x  # (a zero, either sign: what round() returns)
    return round(x, digits)
