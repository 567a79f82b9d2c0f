"""Uplift statistics: Wilson and Newcombe intervals, and the summary record."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from operators.uplift import ArmTally, newcombe, rule_uplift, wilson


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 25), (3, 40), (56, 70), (500, 1000), (999, 1000), (7, 7)])
def test_wilson_agrees_with_scipy(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II example (a):
    # 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    low, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_uplift_on_a_hand_worked_example() -> None:
    # Treated 30 of 100 convert, held out 20 of 100; z = 1.959964, z^2 = 3.841459.
    # Wilson 30/100: centre (0.3 + 3.841459/200) / (1 + 3.841459/100) = 0.319207/1.038415 = 0.307398,
    #   half = 1.959964/1.038415 * sqrt(0.3*0.7/100 + 3.841459/40000) = 1.887459 * 0.046853 = 0.088435
    #   -> [0.218963, 0.395833]   (rounding of the intermediate steps: within 1e-4)
    # Wilson 20/100: centre 0.219207/1.038415 = 0.211098, half = 1.887459 * 0.041174 = 0.077714
    #   -> [0.133384, 0.288812]
    # Newcombe: d = 0.1, low = 0.1 - sqrt((0.3-0.218963)^2 + (0.288812-0.2)^2) = 0.1 - 0.120249 = -0.020249
    #           high = 0.1 + sqrt((0.395833-0.3)^2 + (0.2-0.133384)^2) = 0.1 + 0.116732 = 0.216732
    doc = rule_uplift(
        3 * 86_400_000,
        {"treatment": ArmTally(n=100, conversions=30, revenue=600.0, expired=70), "holdout": ArmTally(n=100, conversions=20, revenue=100.0, expired=80, pending=5)},
    )
    assert doc["window_s"] == 259_200
    assert doc["treated"]["rate"] == 0.3 and doc["holdout"]["rate"] == 0.2
    assert doc["treated"]["rate_ci95"] == pytest.approx([0.218963, 0.395833], abs=1e-4)
    assert doc["holdout"]["rate_ci95"] == pytest.approx([0.133384, 0.288812], abs=1e-4)
    assert doc["uplift_abs"] == pytest.approx(0.1)
    assert doc["uplift_abs_ci95"] == pytest.approx([-0.020249, 0.216732], abs=1e-4)
    assert doc["uplift_rel"] == pytest.approx(0.5)
    assert doc["treated"]["revenue_per_user"] == 6.0 and doc["holdout"]["revenue_per_user"] == 1.0
    assert doc["expired"] == 150 and doc["pending"] == 5
    assert set(doc["arms"]) == {"treatment", "holdout"}
    assert {"n", "conversions", "rate", "revenue_per_user"} <= set(doc["arms"]["holdout"])


def test_variant_arms_pool_into_treated_and_carry_their_share() -> None:
    doc = rule_uplift(
        1000, {"a": ArmTally(n=30, conversions=3), "b": ArmTally(n=90, conversions=27), "holdout": ArmTally(n=40, conversions=2)}
    )
    assert doc["treated"]["n"] == 120 and doc["treated"]["conversions"] == 30
    assert doc["arms"]["b"]["share"] == 0.75 and doc["arms"]["a"]["share"] == 0.25
    assert doc["arms"]["b"]["uplift_abs"] == pytest.approx(0.3 - 0.05)
    assert list(doc["arms"]) == ["a", "b", "holdout"]


def test_no_interval_without_both_sides() -> None:
    doc = rule_uplift(1000, {"treatment": ArmTally(n=10, conversions=1), "holdout": ArmTally()})
    assert doc["uplift_abs"] is None and doc["uplift_abs_ci95"] is None and doc["uplift_rel"] is None
    assert doc["holdout"]["rate"] is None
    zero = rule_uplift(1000, {"treatment": ArmTally(n=10, conversions=1), "holdout": ArmTally(n=10)})
    assert zero["uplift_abs"] == pytest.approx(0.1) and zero["uplift_rel"] is None
    assert all(math.isfinite(x) for x in zero["uplift_abs_ci95"])
