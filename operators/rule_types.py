"""The compiled rules: segment and trigger rules and the set of them.

:mod:`operators.rules` builds them from ``rules.toml`` at start-up; the
per-user step, the audience step and the loop step read them. Each rule knows
the variables it reads, so evaluation passes CEL only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.expressions import Expression, fields_used
from operators.variables import MAPS, MODEL, PROFILE, Variable
from operators import goals

__all__ = ["TRIGGER_ON", "SegmentRule", "TriggerRule", "Rules"]

TRIGGER_ON = ("event", "session_close", "segment_entry")


@dataclass(frozen=True)
class SegmentRule:
    """A named condition over the profile (and model scores).

    Without ``exit_when`` a user is a member while ``when`` holds. With it
    (hysteresis) a user enters when ``when`` holds and leaves only when
    ``exit_when`` does, so a score hovering at the threshold does not move
    them in and out.
    """

    name: str
    description: str
    when: Expression
    exit_when: Expression | None = None
    # Derived once here, not by functools.cached_property: a class compiled by
    # mypyc has no instance __dict__, so a cached_property recomputes at every read.
    variables: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The variables of ``when`` and ``exit_when``, in a fixed order."""

    def __post_init__(self) -> None:
        names = dict.fromkeys(self.when.variables)
        if self.exit_when is not None:
            names.update(dict.fromkeys(self.exit_when.variables))
        object.__setattr__(self, "variables", tuple(names))

    @property
    def uses_models(self) -> bool:
        """Return whether the rule reads model scores (evaluated after the models)."""
        return any(name in MODEL for name in self.variables)


@dataclass(frozen=True)
class TriggerRule:
    """A named trigger: when it is evaluated, its condition, payload and limits."""

    name: str
    description: str
    on: str
    when: Expression
    payload: tuple[tuple[str, Expression], ...]
    cooldown_ms: int = 0
    cooldown_key: Expression | None = None
    event_types: frozenset[str] | None = None
    segment: str | None = None
    holdout: float = 0.0
    # -- closed loop (operators/goals.py, operators/loop.py) --
    goal: goals.Goal = goals.Goal()
    variants: tuple[goals.Variant, ...] = ()
    # Derived once (see SegmentRule.variables for why not cached_property).
    variables: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every variable the trigger reads."""
    profile_variables: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The profile variables the trigger reads, in a fixed order."""
    _maps: dict[str, dict[str, Variable]] = field(init=False, repr=False, compare=False)
    """Map variable -> the fields of it the rule reads (see :meth:`map_fields`)."""

    def __post_init__(self) -> None:
        names = set(self.when.variables)
        for expr in self._payload_expressions:
            names.update(expr.variables)
        if self.cooldown_key is not None:
            names.update(self.cooldown_key.variables)
        object.__setattr__(self, "variables", frozenset(names))
        object.__setattr__(self, "profile_variables", tuple(sorted(n for n in names if n in PROFILE)))
        object.__setattr__(self, "_maps", {name: self._read_fields(name) for name in MAPS})

    @property
    def _payload_expressions(self) -> list[Expression]:
        """Return the payload's expressions and every variant's."""
        found = [e for _, e in self.payload]
        for variant in self.variants:
            found.extend(e for _, e in variant.payload)
        return found

    def _read_fields(self, name: str) -> dict[str, Variable]:
        fields = MAPS[name]
        if name not in self.variables:
            return {}
        expressions = [self.when, *self._payload_expressions]
        if self.cooldown_key is not None:
            expressions.append(self.cooldown_key)
        used: set[str] = set()
        for expression in expressions:
            found = fields_used(expression.source, name)
            if found is None:
                return fields
            used |= found
        return {key: fields[key] for key in sorted(used)}

    def map_fields(self, name: str) -> dict[str, Variable]:
        """Return the fields of map variable ``name`` (``event``, ``session``) the rule reads.

        Passing a map to CEL costs in proportion to its size; a rule that
        only reads ``session.abandoned`` gets a one-entry map. A rule that
        uses the map in any other way (indexed, passed whole) gets all of it.
        """
        return self._maps[name]


@dataclass(frozen=True)
class Rules:
    """All compiled rules."""

    segments: tuple[SegmentRule, ...]
    triggers: tuple[TriggerRule, ...]

    @property
    def profile_segments(self) -> tuple[SegmentRule, ...]:
        """Return the segments decided by the profile alone (the per-user step)."""
        return tuple(s for s in self.segments if not s.uses_models)

    @property
    def model_segments(self) -> tuple[SegmentRule, ...]:
        """Return the segments that read model scores (decided after the models)."""
        return tuple(s for s in self.segments if s.uses_models)

    def triggers_on(self, on: str) -> tuple[TriggerRule, ...]:
        """Return the triggers evaluated on ``on``."""
        return tuple(t for t in self.triggers if t.on == on)

    @property
    def late_variables(self) -> tuple[str, ...]:
        """Return the profile variables needed after the per-user step.

        Model segments and segment-entry triggers are evaluated downstream;
        the per-user step sends these values along with each update.
        """
        names: set[str] = set()
        for rule in self.model_segments:
            names.update(rule.variables)
        for trigger in self.triggers_on("segment_entry"):
            names.update(trigger.variables)
        return tuple(sorted(n for n in names if n in PROFILE))
