"""Compile segment and trigger rules (CEL) once, at start-up, and evaluate them.

Rules are Google's Common Expression Language, through the
``common-expression-language`` package: a real, side-effect-free expression
language, never ``eval``. Each rule is checked when it is loaded: it must
compile, every variable it names must exist where the rule is evaluated, and
a condition must yield a boolean. A failure names the rule and the problem.

Evaluation passes a rule only the variables it reads: the cost of a CEL call
is dominated by converting its context, so a small context keeps a rule at a
microsecond or two. A rule that fails at run time (a division by zero, a
missing map key) counts as false, and the failure is logged once per rule.
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cel

from journeyflow import metrics
from journeyflow.errors import RuleError
from operators.fastrules import compile_simple
from operators.variables import (
    CONTEXTS,
    MAPS,
    MODEL,
    PROFILE,
    RECOMMENDATIONS,
    Variable,
    nearest,
    samples,
    type_of,
    variable_entry,
)
from operators import goals

__all__ = [
    "TRIGGER_ON",
    "Expression",
    "SegmentRule",
    "TriggerRule",
    "Rules",
    "load_rules",
    "parse_rules",
    "recommendation_payloads",
    "evaluate_safely",
]

log = logging.getLogger(__name__)

TRIGGER_ON = ("event", "session_close", "segment_entry")

# `list.exists(p, ...)` binds `p`: a name CEL reports that is not a variable.
_BINDING = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")

_CEL_TYPES = {bool: "bool", int: "int", float: "double", str: "string", list: "list", dict: "map", type(None): "null"}


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the known variables it reads.

    ``fast``: the same expression as a Python closure (:mod:`operators.fastrules`),
    when it is simple and gave CEL's answers on every sample checked at start-up.
    """

    source: str
    program: Any
    variables: tuple[str, ...]
    fast: Callable[[Mapping[str, Any]], Any] | None = field(default=None, compare=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Return the expression's value; ``values`` must hold its variables."""
        if self.fast is not None:
            return self.fast(values)
        return self.cel(values)

    def cel(self, values: Mapping[str, Any]) -> Any:
        """Return the expression's value computed by CEL."""
        # Updating a kept CEL context costs half of converting a new one. One
        # context per thread: worker threads share this expression.
        context = getattr(self._local, "context", None)
        if context is None:
            context = self._local.context = cel.Context()
        context.update({name: values[name] for name in self.variables})
        return self.program.execute(context)


def _compile(owner: str, source: Any, context: str, *, boolean: bool) -> Expression:
    """Compile ``source`` and check it against the names ``context`` offers (see :mod:`operators.variables`)."""
    if not isinstance(source, str) or not source.strip():
        msg = f"{owner}: expression must be a non-empty string; got {source!r} instead"
        raise RuleError(msg)
    try:
        program = cel.compile(source)
    except ValueError as ex:
        msg = f"{owner}: does not compile: {source!r}: {ex}"
        raise RuleError(msg) from None
    offered = CONTEXTS[context]
    bound = set(_BINDING.findall(source))
    # Checked by name, not by running the rule: a typo behind a guard
    # (`false && purchasess > 1`) is never evaluated on sample values.
    unknown = [n for n in program.variables() if n not in offered and n not in bound]
    if unknown:
        hints = ", ".join(f"{n}{nearest(n, offered)}" for n in sorted(unknown))
        if any(n in MODEL for n in unknown):
            hints += "; model scores are known in segments and on = 'segment_entry' triggers only"
        msg = f"{owner}: unknown variable(s) {hints} in {source!r}"
        raise RuleError(msg)
    names = tuple(n for n in program.variables() if n in offered)
    for name in names:
        fields = MAPS.get(name)
        used = _fields_used(source, name) if fields is not None else None
        for field_name in sorted(used or ()):
            if field_name not in fields:  # type: ignore[operator]
                msg = (
                    f"{owner}: unknown field {name}.{field_name} in {source!r}"
                    f"{nearest(field_name, fields)}; {name} has {', '.join(fields)}"  # type: ignore[arg-type]
                )
                raise RuleError(msg)
    known = samples(context)
    types = ", ".join(f"{n} is {_article(type_of(context, n))}" for n in names) or "no variables"
    try:
        result = program.execute({name: known[name] for name in names})
    except Exception as ex:  # a failure on values of the right types is a broken rule
        msg = f"{owner}: {source!r} cannot be evaluated ({types}): {ex}"
        raise RuleError(msg) from None
    if boolean and not isinstance(result, bool):
        kind = _CEL_TYPES.get(type(result), type(result).__name__)
        msg = f"{owner}: must be a boolean condition; got {source!r}, {_article(kind)}, instead ({types})"
        raise RuleError(msg)
    expression = Expression(source=source, program=program, variables=names)
    fast = compile_simple(source)
    if fast is not None and _agrees(expression, fast, known, context):
        return Expression(source=source, program=program, variables=names, fast=fast)
    return expression


def _variants(cel_type: str, sample: Any, nullable: bool) -> list[Any]:
    found: list[Any] = {
        "int": [0, 1, 3, 4, 6, -1],
        "double": [0.0, 0.5, 0.75, 1.0, 60.0, 100.0, -1.0],
        "bool": [True, False],
        "string": ["", "c", "product_view", "web"],
        "list(string)": [[], ["p"], ["p", "q"]],
    }.get(cel_type, [sample])
    return [*found, None] if nullable else found


def _agrees(expression: Expression, fast: Callable[[Mapping[str, Any]], Any], known: Mapping[str, Any], context: str) -> bool:
    """Return whether ``fast`` gives CEL's answer (or fails where CEL fails) on varied samples.

    Each variable the expression reads (each field, for the maps) takes
    several values of its registered type in turn, null too where it may be.
    """
    cases: list[dict[str, Any]] = [dict(known)]
    for name in expression.variables:
        fields = MAPS.get(name)
        if fields is None:
            entry = variable_entry(name)
            cases += [{**known, name: value} for value in _variants(entry.cel_type, entry.sample, entry.nullable)]
            continue
        for entry in fields.values():
            for value in _variants(entry.cel_type, entry.sample, entry.nullable):
                cases.append({**known, name: {**known[name], entry.name: value}})
    for values in cases:
        try:
            want: Any = expression.cel(values)
        except Exception:
            want = _FAILED
        try:
            got: Any = fast(values)
        except Exception:
            got = _FAILED
        if (want is _FAILED) != (got is _FAILED) or (want is not _FAILED and (type(want) is not type(got) or want != got)):
            return False
    return True


_FAILED = object()


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


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

    @cached_property
    def variables(self) -> tuple[str, ...]:
        """Return the variables of ``when`` and ``exit_when``, in a fixed order."""
        names = dict.fromkeys(self.when.variables)
        if self.exit_when is not None:
            names.update(dict.fromkeys(self.exit_when.variables))
        return tuple(names)

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

    @property
    def _payload_expressions(self) -> list[Expression]:
        """Return the payload's expressions and every variant's."""
        found = [e for _, e in self.payload]
        for variant in self.variants:
            found.extend(e for _, e in variant.payload)
        return found

    @cached_property
    def variables(self) -> frozenset[str]:
        """Return every variable the trigger reads."""
        names = set(self.when.variables)
        for expr in self._payload_expressions:
            names.update(expr.variables)
        if self.cooldown_key is not None:
            names.update(self.cooldown_key.variables)
        return frozenset(names)

    @cached_property
    def profile_variables(self) -> tuple[str, ...]:
        """Return the profile variables the trigger reads, in a fixed order."""
        return tuple(sorted(n for n in self.variables if n in PROFILE))

    @cached_property
    def _fields(self) -> dict[str, frozenset[str] | None]:
        expressions = [self.when, *self._payload_expressions]
        if self.cooldown_key is not None:
            expressions.append(self.cooldown_key)
        found: dict[str, frozenset[str] | None] = {}
        for name in ("event", "session"):
            fields: set[str] | None = set()
            for expression in expressions:
                used = _fields_used(expression.source, name)
                fields = None if used is None or fields is None else fields | used
            found[name] = None if fields is None else frozenset(fields)
        return found

    def map_fields(self, name: str) -> dict[str, Variable]:
        """Return the fields of map variable ``name`` (``event``, ``session``) the rule reads.

        Passing a map to CEL costs in proportion to its size; a rule that
        only reads ``session.abandoned`` gets a one-entry map. A rule that
        uses the map in any other way (indexed, passed whole) gets all of it.
        """
        fields = MAPS[name]
        used = self._fields.get(name)
        if name not in self.variables:
            return {}
        if used is None:
            return fields
        return {key: fields[key] for key in sorted(used)}


def _fields_used(source: str, name: str) -> set[str] | None:
    """Return the fields of map ``name`` that ``source`` reads as ``name.field``.

    ``None`` when ``name`` is used otherwise too (indexed, passed whole).

    >>> sorted(_fields_used("size(session.abandoned) > 0 && session.events > 1", "session"))
    ['abandoned', 'events']
    >>> _fields_used("has(session.x) && session['y'] == 1", "session") is None
    True
    """
    total = len(re.findall(rf"\b{name}\b", source))
    dotted = re.findall(rf"\b{name}\.([A-Za-z_][A-Za-z0-9_]*)", source)
    return set(dotted) if len(dotted) == total else None


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


def _table(owner: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        msg = f"{owner} must be a table; got {doc!r} instead"
        raise RuleError(msg)
    return doc


def _check_keys(owner: str, doc: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        msg = f"{owner}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        raise RuleError(msg)


def _number(owner: str, doc: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        msg = f"{owner}: {key} must be a number in [{low}, {high}]; got {value!r} instead"
        raise RuleError(msg)
    return value


def _segment(name: str, doc: Any) -> SegmentRule:
    owner = f"segment {name!r}"
    doc = _table(owner, doc)
    _check_keys(owner, doc, ("when", "exit_when", "description"))
    if "when" not in doc:
        msg = f"{owner}: missing key 'when'"
        raise RuleError(msg)
    exit_when = doc.get("exit_when")
    return SegmentRule(
        name,
        str(doc.get("description", "")),
        _compile(owner, doc["when"], "segment", boolean=True),
        None if exit_when is None else _compile(f"{owner} exit_when", exit_when, "segment", boolean=True),
    )


def _trigger(name: str, doc: Any, segment_names: set[str]) -> TriggerRule:
    owner = f"trigger {name!r}"
    doc = _table(owner, doc)
    _check_keys(
        owner,
        doc,
        (
            "description", "on", "when", "payload", "cooldown_s", "cooldown_key", "event_types", "segment",
            "holdout", "goal", "variants",
        ),
    )
    on = doc.get("on")
    if on not in TRIGGER_ON:
        msg = f"{owner}: on must be one of {', '.join(TRIGGER_ON)}; got {on!r} instead"
        raise RuleError(msg)
    known = on
    segment = doc.get("segment")
    if on == "segment_entry" and segment not in segment_names and not str(segment).startswith("cluster:"):
        msg = (
            f"{owner}: segment must name a segment ({', '.join(sorted(segment_names))}); "
            f"got {segment!r} instead"
        )
        raise RuleError(msg)
    if on != "segment_entry" and segment is not None:
        msg = f"{owner}: segment is only for on = 'segment_entry'"
        raise RuleError(msg)
    event_types = doc.get("event_types")
    if event_types is not None:
        from journeyflow.events import EVENT_TYPES

        if on != "event" or not isinstance(event_types, list) or not set(event_types) <= EVENT_TYPES:
            msg = f"{owner}: event_types must list event types (on = 'event'); got {event_types!r} instead"
            raise RuleError(msg)
        event_types = frozenset(event_types)
    payload_doc = doc.get("payload", {})
    if not isinstance(payload_doc, dict):
        msg = f"{owner}: payload must be a table of name = CEL expression; got {payload_doc!r} instead"
        raise RuleError(msg)
    payload = tuple(
        (key, _compile(f"{owner} payload {key!r}", source, known, boolean=False))
        for key, source in payload_doc.items()
    )
    cooldown_key = doc.get("cooldown_key")
    # -- closed loop: the goal's condition is checked on a sample trigger of this rule.
    variants = goals.parse_variants(owner, doc.get("variants"), compile_=_compile, context=known)
    sample = samples(known)
    sample_payload = {key: expr.evaluate(sample) for key, expr in payload}
    for variant in variants:
        sample_payload.update((key, expr.evaluate(sample)) for key, expr in variant.payload)
    goal = goals.parse_goal(owner, doc.get("goal"), payload_sample=sample_payload)
    rule = TriggerRule(
        name=name,
        description=str(doc.get("description", "")),
        on=on,
        when=_compile(owner, doc.get("when", "true"), known, boolean=True),
        payload=payload,
        cooldown_ms=int(_number(owner, doc, "cooldown_s", 0, 0, 10 * 365 * 86400) * 1000),
        cooldown_key=None if cooldown_key is None else _compile(f"{owner} cooldown_key", cooldown_key, known, boolean=False),
        event_types=event_types,
        segment=segment,
        holdout=float(_number(owner, doc, "holdout", 0.0, 0.0, 1.0)),
        goal=goal,
        variants=variants,
    )
    _check_recommendations(owner, rule)
    return rule


def _check_recommendations(owner: str, rule: TriggerRule) -> None:
    """Allow ``recommendations`` in payload expressions over nothing else.

    The list is known after the recommender's list step, downstream of where
    triggers fire; that step evaluates these payload entries (see
    :func:`recommendation_payloads`), and can give them nothing but the list.
    """
    for part, expression in (("when", rule.when), ("cooldown_key", rule.cooldown_key)):
        if expression is not None and RECOMMENDATIONS in expression.variables:
            msg = f"{owner}: {part} cannot read recommendations (payloads only); got {expression.source!r}"
            raise RuleError(msg)
    for variant in rule.variants:
        for key, expression in variant.payload:
            if RECOMMENDATIONS in expression.variables:
                msg = f"{owner} variant payload {key!r}: recommendations can be read in the rule's own payload only"
                raise RuleError(msg)
    for key, expression in rule.payload:
        others = [n for n in expression.variables if n != RECOMMENDATIONS]
        if RECOMMENDATIONS in expression.variables and others:
            msg = (
                f"{owner} payload {key!r}: an expression over recommendations must read nothing else; "
                f"got {', '.join(others)} in {expression.source!r}"
            )
            raise RuleError(msg)


def recommendation_payloads(rules: Rules) -> dict[str, tuple[tuple[str, Expression], ...]]:
    """Return, per trigger, the payload entries that read ``recommendations``."""
    found = {}
    for rule in rules.triggers:
        entries = tuple((k, e) for k, e in rule.payload if RECOMMENDATIONS in e.variables)
        if entries:
            found[rule.name] = entries
    return found


_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _check_name(kind: str, name: str) -> None:
    # Names travel in outputs and metric labels, and `|` separates a trigger's
    # name from its cooldown key in the user's state.
    if not _NAME.fullmatch(name):
        msg = f"{kind} name must be 1..64 letters, digits, '_', '.', ':' or '-'; got {name!r} instead"
        raise RuleError(msg)


def parse_rules(doc: Mapping[str, Any], origin: str = "rules") -> Rules:
    """Compile rules from a parsed TOML document; raise :class:`RuleError` if any is bad.

    >>> rules = parse_rules({"segments": {"big": {"when": "purchases_total > 10"}}})
    >>> [s.name for s in rules.segments]
    ['big']
    >>> parse_rules({"segments": {"bad": {"when": "purchases > 10"}}})
    Traceback (most recent call last):
    ...
    journeyflow.errors.RuleError: segment 'bad': unknown variable(s) purchases (did you mean 'purchases_...'?) in 'purchases > 10'
    >>> parse_rules({"triggers": {"t": {"on": "event", "when": "product_views > 1 && event.prise > 10.0"}}})
    Traceback (most recent call last):
    ...
    journeyflow.errors.RuleError: trigger 't': unknown field event.prise in 'product_views > 1 && event.prise > 10.0' (did you mean 'price'?); event has ...
    """
    _check_keys(origin, doc, ("segments", "triggers"))
    segments_doc = _table(f"{origin} [segments]", doc.get("segments", {}))
    for name in segments_doc:
        _check_name("segment", name)
    segments = tuple(_segment(name, rule) for name, rule in segments_doc.items())
    names = {s.name for s in segments}
    triggers_doc = _table(f"{origin} [triggers]", doc.get("triggers", {}))
    for name in triggers_doc:
        _check_name("trigger", name)
    triggers = tuple(_trigger(name, rule, names) for name, rule in triggers_doc.items())
    return Rules(segments=segments, triggers=triggers)


def load_rules(path: Path) -> Rules:
    """Read and compile the rules file at ``path``."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        msg = f"rules file {str(path)!r} does not exist"
        raise RuleError(msg) from None
    except tomllib.TOMLDecodeError as ex:
        msg = f"rules file {str(path)!r} is not valid TOML: {ex}"
        raise RuleError(msg) from ex
    return parse_rules(doc, origin=str(path))


def evaluate_safely(rule_name: str, expression: Expression, values: Mapping[str, Any], failed: set[str]) -> Any:
    """Evaluate ``expression``; on a run-time failure return ``None``, count it and log once per rule.

    Counted in ``journeyflow_rule_errors_total{rule}`` (and a replay's
    ``summary.json``, ``rule_errors``).
    """
    try:
        return expression.evaluate(values)
    except Exception as ex:  # a rule's run-time failure must not stop the job
        metrics.RULE_ERRORS.labels(rule=rule_name).inc()
        if rule_name not in failed:
            failed.add(rule_name)
            log.warning("rule failed at run time; treated as false", extra={"rule": rule_name, "error": str(ex)})
        return None
