"""Decide which segments a user is in, re-evaluating only rules whose inputs changed.

A segment rule is a pure function of the variables it reads, so a rule whose
inputs are unchanged since the last evaluation cannot change its answer: its
membership is carried over. And an event that cannot change any rule's
inputs (a page view, when no rule reads page views) is not evaluated at all;
see :mod:`operators.variables`. Inputs include time-dependent values
(``recency_days``, trailing windows), so time is seen to pass whenever the
user's profile is looked at again: on the user's next event, at the latest
every refresh interval of event time (timers in the live worker), and at the
end of a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from operators.expressions import evaluate_safely
from operators.rule_types import SegmentRule
from operators.variables import ANY_EVENT, SESSION_CLOSE, SESSION_START, changed_by

__all__ = ["SegmentConfig", "MISSING", "evaluate"]

MISSING: Final[Any] = object()
"""An input not known yet (a score before the models gave one): a rule reading
it keeps its last answer, and the other rules are decided as usual."""


#: At most this many distinct segment lists shared per step (the rules name few segments,
#: and users share few lists).
_SHARED_CAP: Final = 4096


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

    changed_by: frozenset[str] = field(init=False)
    """Event types (and session starts/closes) that can change an input of a rule."""
    session_positions: tuple[int, ...] = field(init=False)
    """Where the variables a session's close can change sit in :attr:`variables`: those
    of session starts and closes (the counts of open and closed sessions, their starts,
    lengths and conversions, which are all a close changes)."""
    unknown: tuple[Any, ...] = field(init=False)
    """Inputs with every variable :data:`MISSING` (a user not scored yet), one tuple for all
    such users to keep (instead of one each)."""
    shared: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, init=False, compare=False, repr=False)
    """The segment lists this step's users hold, one tuple for each distinct list
    (:meth:`shared_names`); at most :data:`_SHARED_CAP` lists."""

    def __post_init__(self) -> None:
        names: dict[str, None] = {}
        for rule in self.rules:
            names.update(dict.fromkeys(rule.variables))
        variables = tuple(names)
        positions = tuple(tuple(variables.index(n) for n in r.variables) for r in self.rules)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "changed_by", changed_by(variables))
        sessions = frozenset({SESSION_START, SESSION_CLOSE})
        session_positions = tuple(i for i, n in enumerate(variables) if changed_by((n,)) & sessions)
        object.__setattr__(self, "session_positions", session_positions)
        object.__setattr__(self, "unknown", (MISSING,) * len(variables))

    def shared_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Return a tuple equal to ``names`` that every user of this step with this list of segments holds.

        A user's segments are kept until they change (the per-user step's and the audience
        step's), and most users are in one of a few lists: one tuple each, with its names
        (``cluster:N`` is made anew at every update), instead of a tuple and names per user
        (about 100 bytes a user). Equal tuples of strings are interchangeable: readers compare
        them and read their names, never their identity. Past the cap, ``names`` itself.

        >>> cfg = SegmentConfig(())
        >>> a = cfg.shared_names(("cluster:1", "new_visitor"))
        >>> cfg.shared_names(tuple(["cluster:1", "new_" + "visitor"])) is a
        True
        """
        shared = self.shared
        found = shared.get(names)
        if found is not None:
            return found
        if len(shared) < _SHARED_CAP:
            shared[names] = names
        return names

    def reacts_to(self, kind: str) -> bool:
        """Return whether an event (or ``session_start``/``session_close``) may change a rule's inputs."""
        return kind in self.changed_by or ANY_EVENT in self.changed_by


def evaluate(
    cfg: SegmentConfig,
    inputs: tuple[Any, ...],
    current: frozenset[str],
    previous_inputs: tuple[Any, ...] | None,
) -> frozenset[str]:
    """Return the segments the user is in now.

    ``inputs`` are the values of :attr:`SegmentConfig.variables`, in order;
    ``current`` is the membership decided last time from ``previous_inputs``
    (``None``: evaluate every rule).

    >>> from operators.rules import parse_rules
    >>> rules = parse_rules({"segments": {"big": {"when": "purchases_total > 2"}}})
    >>> cfg = SegmentConfig(rules.segments)
    >>> sorted(evaluate(cfg, (3,), frozenset(), None))
    ['big']
    >>> evaluate(cfg, (3,), frozenset({"big"}), (3,))  # unchanged inputs: no evaluation
    frozenset({'big'})
    >>> risky = SegmentConfig(parse_rules({"segments": {"risk": {"when": "churn_risk > 0.7", "exit_when": "churn_risk < 0.5"}}}).segments)
    >>> sorted(evaluate(risky, (0.6,), frozenset({"risk"}), (0.8,)))  # hovering: stays
    ['risk']
    >>> sorted(evaluate(risky, (0.4,), frozenset({"risk"}), (0.6,)))
    []
    >>> sorted(evaluate(risky, (0.6,), frozenset(), (0.4,)))  # not back in until above 0.7
    []
    """
    if inputs == previous_inputs:
        return current
    given: dict[str, Any] | None = None  # built for the first rule that is evaluated
    members = set()
    all_positions = cfg.positions
    # (Loops rather than any() over a generator and zip(): compiled by mypyc, each
    # generator is an object made per rule and evaluation.)
    for r, rule in enumerate(cfg.rules):
        positions = all_positions[r]
        missing = False
        for i in positions:
            if inputs[i] is MISSING:
                missing = True
                break
        if missing:
            if rule.name in current:
                members.add(rule.name)
            continue
        if previous_inputs is not None:
            for i in positions:
                if inputs[i] != previous_inputs[i]:
                    break
            else:
                if rule.name in current:
                    members.add(rule.name)
                continue
        if given is None:
            names = cfg.variables
            given = {names[i]: inputs[i] for i in range(len(names))}
        if rule.exit_when is not None and rule.name in current:
            # Hysteresis: a member stays until the exit condition holds.
            if evaluate_safely(rule.name, rule.exit_when, given, cfg.failed) is not True:
                members.add(rule.name)
        elif evaluate_safely(rule.name, rule.when, given, cfg.failed) is True:
            members.add(rule.name)
    return frozenset(members) if members != current else current
