"""The closed loop's reports: each rule's uplift, the bandits' posteriors, the uplift gauges.

Split from :mod:`operators.loop` (whose :class:`~operators.loop.LoopLogic`
calls these as its triggers mature and at the end of input): they only read
the loop's state. A rule's uplift counts every arm it can have (the holdout,
its variants or the treated side) even before any trigger of it matured, and
reports the triggers still in their window apart (``pending``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from river import proba

from journeyflow import metrics
from operators.goals import HOLDOUT, TREATMENT
from operators.loop_records import LoopReport
from operators.loop_state import LoopState
from operators.rule_types import TriggerRule
from operators.uplift import ArmTally, rule_uplift

__all__ = ["uplift", "report", "publish"]


def uplift(state: LoopState, rules: Mapping[str, TriggerRule], name: str) -> dict[str, Any]:
    """Return rule ``name``'s uplift record, pending triggers included."""
    arms = {arm: replace(tally) for arm, tally in state.tallies.get(name, {}).items()}
    rule = rules[name]
    if rule.holdout > 0:
        arms.setdefault(HOLDOUT, ArmTally())
    for variant in rule.variants:
        arms.setdefault(variant.name, ArmTally())
    if not rule.variants and rule.holdout < 1:
        arms.setdefault(TREATMENT, ArmTally())
    for arm, pending in state.pending.get(name, {}).items():
        if pending:
            arms.setdefault(arm, ArmTally()).pending += pending
    return rule_uplift(rule.goal.window_ms, arms)


def report(state: LoopState, rules: Mapping[str, TriggerRule]) -> LoopReport:
    """Return the uplift of every rule and the bandits' posteriors."""
    bandits = {}
    for name, policy in sorted(state.bandits.items()):
        arms = {}
        for arm, reward in sorted(policy._rewards.items()):  # River keeps no public accessor
            beta = cast(proba.Beta, reward)  # ThompsonSampling(reward_obj=proba.Beta()): see LoopConfig
            arms[str(arm)] = {"alpha": beta.alpha, "beta": beta.beta, "mean": round(beta.alpha / (beta.alpha + beta.beta), 6)}
        bandits[name] = arms
    return LoopReport(
        uplift={name: uplift(state, rules, name) for name in sorted(rules)},
        bandits=bandits,
        conversions=state.conversions,
        max_delay_s=state.max_delay_ms / 1000,
    )


def publish(rule: str, doc: dict[str, Any]) -> None:
    """Set the uplift gauges of ``rule`` (Prometheus) from its :func:`uplift` record ``doc``."""
    for arm, figures in doc["arms"].items():
        if figures["rate"] is not None:
            metrics.CONVERSION_RATE.labels(rule=rule, variant=arm).set(figures["rate"])
    if doc["uplift_abs"] is not None:
        low, high = doc["uplift_abs_ci95"]
        metrics.UPLIFT.labels(rule=rule, stat="abs").set(doc["uplift_abs"])
        metrics.UPLIFT.labels(rule=rule, stat="ci95_low").set(low)
        metrics.UPLIFT.labels(rule=rule, stat="ci95_high").set(high)
