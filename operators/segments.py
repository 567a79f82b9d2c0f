"""Decide which segments a user is in, re-evaluating only rules whose inputs changed.

A segment rule is a pure function of the variables it reads, so a rule whose
inputs are unchanged since the last evaluation cannot change its answer: its
membership is carried over. Inputs include time-dependent values
(``recency_days``, trailing windows), so time is seen to pass whenever the
user's profile is looked at again: on the user's next event, at the latest
every refresh interval of event time (timers in the live worker), and at the
end of a replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.rules import SegmentRule, evaluate_safely

__all__ = ["SegmentConfig", "Evaluation", "evaluate"]


@dataclass(frozen=True)
class SegmentConfig:
    """The segment rules one step decides, and what they read."""

    rules: tuple[SegmentRule, ...]
    failed: set[str] = field(default_factory=set, compare=False)
    """Rules that failed at run time (logged once each)."""
    variables: tuple[str, ...] = field(init=False)
    """The union of the variables the rules read, in a fixed order."""
    positions: tuple[tuple[int, ...], ...] = field(init=False)
    """For each rule, where its variables sit in :attr:`variables`."""

    def __post_init__(self) -> None:
        names: dict[str, None] = {}
        for rule in self.rules:
            names.update(dict.fromkeys(rule.when.variables))
        variables = tuple(names)
        positions = tuple(tuple(variables.index(n) for n in r.when.variables) for r in self.rules)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "positions", positions)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of evaluating a user's segments."""

    members: frozenset[str]
    inputs: tuple[Any, ...]
    """Input values, in :attr:`SegmentConfig.variables` order, for the next call."""


def evaluate(
    cfg: SegmentConfig,
    values: Callable[[tuple[str, ...]], Mapping[str, Any]],
    current: frozenset[str],
    previous_inputs: tuple[Any, ...] | None,
) -> Evaluation:
    """Return the segments the user is in now.

    ``values(names)`` computes the variables (a dict in ``names`` order);
    ``current`` is the membership
    decided last time from ``previous_inputs`` (``None``: evaluate every rule).

    >>> from operators.rules import parse_rules
    >>> rules = parse_rules({"segments": {"big": {"when": "purchases_total > 2"}}})
    >>> cfg = SegmentConfig(rules.segments)
    >>> first = evaluate(cfg, lambda names: {"purchases_total": 3}, frozenset(), None)
    >>> sorted(first.members)
    ['big']
    """
    names = cfg.variables
    given = values(names)
    inputs = tuple(given.values())
    if inputs == previous_inputs:
        return Evaluation(current, inputs)
    members = set()
    for rule, positions in zip(cfg.rules, cfg.positions, strict=True):
        if previous_inputs is not None:
            for i in positions:
                if inputs[i] != previous_inputs[i]:
                    break
            else:
                if rule.name in current:
                    members.add(rule.name)
                continue
        if evaluate_safely(rule.name, rule.when, given, cfg.failed) is True:
            members.add(rule.name)
    return Evaluation(frozenset(members), inputs)
