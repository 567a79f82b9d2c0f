"""log1p_count and log1p_float give math.log1p's very float (value and sign)."""

from __future__ import annotations

import math
import random

from operators.log1p import COUNTS, log1p_count, log1p_float


def _same(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) and type(a) is type(b)


def test_counts_in_and_beyond_the_table() -> None:
    for n in [*range(COUNTS + 10), 10**5, 10**9, 2**53 + 1]:
        assert _same(log1p_count(n), math.log1p(n)), n


def test_floats_zeros_and_others() -> None:
    rng = random.Random(21)
    values = [0.0, -0.0, 5e-324, -5e-324, 1e-300, 1.0, 365.0, math.inf, -0.5, 1e308]
    values += [rng.random() * 10 ** rng.randint(-8, 6) for _ in range(20_000)]
    values += [rng.randint(0, 400 * 86_400_000) / 86_400_000 for _ in range(20_000)]  # days
    for x in values:
        assert _same(log1p_float(x), math.log1p(x)), x
    assert math.isnan(log1p_float(math.nan))
