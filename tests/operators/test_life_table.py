"""A life table's counts read as a curve: pooled thin bands, never falling, a geometric tail, read between bands."""

from __future__ import annotations

import math

from operators.life_table import MIN_BAND, monotone_curve, read_between


def test_a_thin_band_is_pooled_with_the_one_before_and_the_curve_never_falls() -> None:
    # Band 2 is thin (below MIN_BAND): it joins band 1. Band 4 stays away less than band 3: they pool.
    examples = [200, 100, MIN_BAND - 1, 40, 40, 0]
    stayed = [40, 50, 10, 36, 32, 0]
    curve = monotone_curve(examples, stayed)
    assert curve is not None
    assert curve == sorted(curve)
    assert curve[1] == curve[2] == (50 + 10 + 1) / (100 + MIN_BAND - 1 + 2)
    assert curve[3] == curve[4] == (36 + 32 + 1) / (80 + 2)


def test_no_band_with_enough_examples_gives_no_curve() -> None:
    assert monotone_curve([MIN_BAND - 1, 3], [2, 3]) is None
    assert monotone_curve([MIN_BAND, 0], [2, 0]) is not None


def test_the_tail_falls_geometrically_and_is_never_surer_than_the_last_blocks_counts() -> None:
    curve = monotone_curve([200, 100, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0], [40, 50, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert curve is not None
    back = [1.0 - q for q in curve]
    ratio = back[2] / back[1]
    assert 0.0 < ratio < 1.0
    assert math.isclose(back[3], back[2] * ratio)
    assert math.isclose(back[4], back[2] * ratio**2)
    assert curve[-1] == 41 / 42  # all 40 of the last block stayed away, by Laplace's rule


def test_the_curve_is_read_at_each_bands_middle_and_on_the_line_between() -> None:
    curve = [0.2, 0.6, 0.8]
    assert read_between(curve, 0.5) == 0.2 and read_between(curve, 1.5) == 0.6
    assert math.isclose(read_between(curve, 2.0), 0.7)
    assert read_between(curve, 0.0) == 0.2 and read_between(curve, 9.0) == 0.8
    # Monotone wherever the curve is.
    points = [read_between(curve, x / 10) for x in range(40)]
    assert points == sorted(points)
