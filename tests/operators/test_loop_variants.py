"""The loop step's variants: the bandit's choices, their payloads, seeds and snapshots,
and the goal and variant checks at start-up."""

from __future__ import annotations

import random

import pytest

from journeyflow.records import Trigger
from operators.loop import LoopLogic
from tests.operators.loop_helpers import HOUR, T0, VARIANTS, loop_config, make_offer, make_purchase, report_of


def _simulate(logic: LoopLogic, rates: dict[str, float], n: int, seed: int = 1) -> list[str]:
    """Fire ``n`` offers an hour apart; each chosen variant converts with its rate, 10 min later."""
    rng = random.Random(seed)
    chosen = []
    for i in range(n):
        ts = T0 + i * HOUR
        (trigger,) = [x for x in logic.on_item(make_offer(f"u{i}", ts))[0] if isinstance(x, Trigger)]
        chosen.append(trigger.variant)
        if rng.random() < rates[trigger.variant]:
            logic.on_item(make_purchase(f"u{i}", ts + 10 * 60_000))
    return chosen


def test_the_bandit_gives_the_better_variant_most_traffic() -> None:
    logic = loop_config(VARIANTS).build(None)
    chosen = _simulate(logic, {"plain": 0.05, "discount": 0.15}, 2000)
    assert set(chosen) == {"plain", "discount"}
    last = chosen[1000:]
    assert last.count("discount") / len(last) > 0.8
    report = report_of(logic)
    arms = report.uplift["offer"]["arms"]
    assert arms["discount"]["share"] > 0.7
    assert report.bandits["offer"]["discount"]["mean"] > report.bandits["offer"]["plain"]["mean"]


def test_a_chosen_variant_names_its_own_payload() -> None:
    logic = loop_config(VARIANTS).build(None)
    (trigger,) = logic.on_item(make_offer("u1", T0))[0]
    assert trigger.variant in ("plain", "discount") and trigger.options == ()
    assert trigger.payload["text"] == {"plain": "come back", "discount": "10% off"}[trigger.variant]


def test_choices_are_deterministic_and_survive_a_snapshot() -> None:
    cfg = loop_config(VARIANTS)
    rates = {"plain": 0.1, "discount": 0.2}
    whole = _simulate(cfg.build(None), rates, 600)
    first = cfg.build(None)
    head = _simulate(first, rates, 300)
    resumed = cfg.build(first.snapshot())
    assert resumed.snapshot() == first.snapshot()
    # The same simulated customers from offer 300 on: same rng draws as the whole run.
    rng = random.Random(1)
    for _ in range(300):
        rng.random()
    tail = []
    for i in range(300, 600):
        ts = T0 + i * HOUR
        (trigger,) = [x for x in resumed.on_item(make_offer(f"u{i}", ts))[0] if isinstance(x, Trigger)]
        tail.append(trigger.variant)
        if rng.random() < rates[trigger.variant]:
            resumed.on_item(make_purchase(f"u{i}", ts + 10 * 60_000))
    assert head + tail == whole


def test_a_different_seed_makes_different_choices() -> None:
    rates = {"plain": 0.1, "discount": 0.1}
    assert _simulate(loop_config(VARIANTS, seed=1).build(None), rates, 200) != _simulate(
        loop_config(VARIANTS, seed=2).build(None), rates, 200
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('variants = { a = { x = "1" } }', "at least two"),
        ('variants = { holdout = { x = "1" }, b = { x = "2" } }', "not holdout/treatment"),
        ('goal = { event_types = ["forget"] }', "goal event_types must be"),
        ("goal = { window_s = 0 }", "goal window_s must be an integer"),
        ('goal = { when = "event.nope > 1" }', "goal"),
        ('goal = { when = "event.revenue" }', "must be a boolean condition"),
        ("goal = { horizon = 3 }", "unknown key(s) horizon"),
    ],
)
def test_bad_goals_and_variants_stop_start_up(extra: str, message: str) -> None:
    from journeyflow.errors import RuleError

    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        loop_config(f'\n[triggers.bad]\non = "event"\n{extra}\n')
