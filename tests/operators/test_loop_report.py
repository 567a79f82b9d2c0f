"""The closed loop's reports from a hand-made state (operators/loop_report.py)."""

from __future__ import annotations

import tomllib

from river import bandit, proba

from journeyflow import metrics
from operators.loop_report import publish, report, uplift
from operators.loop_state import LoopState
from operators.rule_types import TriggerRule
from operators.rules import parse_rules
from operators.uplift import ArmTally

RULES_TOML = """
[triggers.cart]
on = "session_close"
holdout = 0.0
goal = { window_s = 86400 }

[triggers.offer]
on = "session_close"
variants = { plain = { text = "'come back'" }, discount = { text = "'10% off'" } }
holdout = 0.1
goal = { window_s = 3600 }
"""


def _rules() -> dict[str, TriggerRule]:
    return {r.name: r for r in parse_rules(tomllib.loads(RULES_TOML)).triggers}


def test_every_arm_a_rule_can_have_is_reported_before_any_trigger_matured() -> None:
    rules = _rules()
    state = LoopState()
    offer = uplift(state, rules, "offer")
    assert list(offer["arms"]) == ["discount", "plain", "holdout"]
    assert all(arm["n"] == 0 and arm["rate"] is None for arm in offer["arms"].values())
    assert offer["window_s"] == 3600 and offer["uplift_abs"] is None
    # No variants and no holdout: only the treated side.
    assert list(uplift(state, rules, "cart")["arms"]) == ["treatment"]


def test_uplift_counts_matured_trials_and_reports_pending_ones_apart() -> None:
    rules = _rules()
    state = LoopState(
        tallies={"offer": {"plain": ArmTally(n=40, conversions=12, revenue=120.0), "holdout": ArmTally(n=40, conversions=4)}},
        pending={"offer": {"plain": 3, "discount": 0, "holdout": 1}},
    )
    doc = uplift(state, rules, "offer")
    assert doc["arms"]["plain"]["n"] == 40 and doc["arms"]["plain"]["pending"] == 3
    assert doc["arms"]["plain"]["rate"] == 0.3 and doc["arms"]["plain"]["revenue_per_user"] == 3.0
    assert doc["arms"]["holdout"]["pending"] == 1 and doc["arms"]["discount"]["pending"] == 0
    assert doc["treated"]["n"] == 40 and doc["treated"]["pending"] == 3 and doc["pending"] == 4
    assert doc["uplift_abs"] == 0.2
    # The state's tallies are read, not changed (pending is added to copies).
    assert state.tallies["offer"]["plain"].pending == 0


def test_the_report_gives_every_rule_and_each_bandits_posterior() -> None:
    rules = _rules()
    policy = bandit.ThompsonSampling(reward_obj=proba.Beta(), seed=1)
    for arm, reward in (("plain", 1.0), ("plain", 0.0), ("plain", 1.0), ("discount", 0.0)):
        policy.update(arm, reward)
    state = LoopState(bandits={"offer": policy}, conversions=7, max_delay_ms=2500)
    doc = report(state, rules)
    assert list(doc.uplift) == ["cart", "offer"]
    assert doc.uplift["offer"] == uplift(state, rules, "offer")
    assert doc.bandits == {
        "offer": {
            "discount": {"alpha": 1, "beta": 2, "mean": round(1 / 3, 6)},
            "plain": {"alpha": 3, "beta": 2, "mean": 0.6},
        }
    }
    assert doc.conversions == 7 and doc.max_delay_s == 2.5


def test_publish_sets_the_rate_and_uplift_gauges() -> None:
    rule = "publish-test"
    publish(
        rule,
        {
            "arms": {"treatment": {"rate": 0.25}, "holdout": {"rate": 0.1}, "new": {"rate": None}},
            "uplift_abs": 0.15,
            "uplift_abs_ci95": [0.05, 0.2],
        },
    )
    assert metrics.CONVERSION_RATE.labels(rule=rule, variant="treatment")._value.get() == 0.25
    assert metrics.CONVERSION_RATE.labels(rule=rule, variant="holdout")._value.get() == 0.1
    stats = {stat: metrics.UPLIFT.labels(rule=rule, stat=stat)._value.get() for stat in ("abs", "ci95_low", "ci95_high")}
    assert stats == {"abs": 0.15, "ci95_low": 0.05, "ci95_high": 0.2}
