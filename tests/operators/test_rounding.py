"""round_digits gives round()'s very float (value and sign), on the values the step rounds and on edge cases."""

from __future__ import annotations

import math
import random

import pytest

from operators.rounding import round_digits

_DAY_MS = 86_400_000


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _values(rng: random.Random) -> list[tuple[float, int]]:
    found: list[tuple[float, int]] = []
    for _ in range(20_000):
        digits = rng.choice((1, 2, 3, 4, 6))
        found.append((rng.random() * 10 ** rng.randint(-3, 8), digits))
        found.append((rng.randint(0, 400 * _DAY_MS) / _DAY_MS, 2))  # days_between
        found.append((rng.randint(0, 10**7) / 100 * rng.randint(1, 9), 2))  # amounts
        whole = rng.randint(0, 10**6)
        found.append(((whole + 0.5) / 10**digits, digits))  # halves, as near as floats get
        found.append((whole / 10**digits, digits))
        found.append((rng.randint(0, 1000) / rng.randint(1, 1000), 4))  # rates
        found.append((-rng.random() * 10 ** rng.randint(-3, 8), digits))  # negatives: symmetric
        found.append((-(whole + 0.5) / 10**digits, digits))
    return found


def test_the_same_float_as_round() -> None:
    for x, digits in _values(random.Random(20)):
        assert _same(round_digits(x, digits), round(x, digits)), (x, digits)


@pytest.mark.parametrize(
    "x",
    [0.0, -0.0, 1e300, -1e300, math.inf, -math.inf, math.nan, 2.0**52, 2.0**51 + 0.5, 5e-324, 0.005, 0.015, 0.125, 2.675],
)
def test_edges(x: float) -> None:
    for digits in range(16):
        assert _same(round_digits(x, digits), round(x, digits)), (x, digits)
