"""Rule expressions: CEL compiled and checked once, at start-up, and evaluated safely.

Rules are Google's Common Expression Language, through the
``common-expression-language`` package: a real, side-effect-free expression
language, never ``eval``. :func:`compile_expression` checks that an
expression compiles, that every variable it names exists where it is
evaluated (:mod:`operators.variables`), and that it evaluates on sample
values; a simple one also gets a Python closure (:mod:`operators.fastrules`)
checked against CEL on varied samples. :func:`evaluate_safely` counts and
logs a run-time failure and treats it as false.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from journeyflow import metrics
from journeyflow.errors import RuleError
from operators.fastrules import compile_simple
from operators.variables import CONTEXTS, MAPS, MODEL, nearest, samples, type_of, variable_entry

__all__ = ["Expression", "compile_expression", "compile_message", "fields_used", "article", "evaluate_safely"]

log = logging.getLogger("operators.rules")  # the name run-time rule failures were always logged under

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


def compile_message(ex: Exception) -> str:
    """Return CEL's compile error on one line: its first, which names the line and column.

    The lines after it draw a caret under the column, which a one-line error cannot show.
    """
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__


def _hint(name: str, offered: tuple[str, ...]) -> str:
    """Say where a map this rule does not offer is offered (and the map it does), else suggest the nearest name."""
    if name in MAPS:
        where = " or ".join(f"on = {c!r}" for c, names in CONTEXTS.items() if name in names)
        here = [m for m in MAPS if m in offered]
        return f" (only in {where} triggers" + (f"; this rule reads {here[0]})" if here else ")")
    return nearest(name, offered)


def compile_expression(owner: str, source: Any, context: str, *, boolean: bool) -> Expression:
    """Compile ``source`` and check it against the names ``context`` offers (see :mod:`operators.variables`)."""
    if not isinstance(source, str) or not source.strip():
        msg = f"{owner}: expression must be a non-empty string; got {source!r} instead"
        raise RuleError(msg)
    try:
        program = cel.compile(source)
    except ValueError as ex:
        msg = f"{owner}: does not compile: {source!r}: {compile_message(ex)}"
        raise RuleError(msg) from None
    offered = CONTEXTS[context]
    bound = set(_BINDING.findall(source))
    # Checked by name, not by running the rule: a typo behind a guard
    # (`false && purchasess > 1`) is never evaluated on sample values.
    unknown = [n for n in program.variables() if n not in offered and n not in bound]
    if unknown:
        hints = ", ".join(f"{n}{_hint(n, offered)}" for n in sorted(unknown))
        if any(n in MODEL for n in unknown):
            hints += "; model scores are known in segments and on = 'segment_entry' triggers only"
        msg = f"{owner}: unknown variable(s) {hints} in {source!r}"
        raise RuleError(msg)
    names = tuple(n for n in program.variables() if n in offered)
    for name in names:
        fields = MAPS.get(name)
        used = fields_used(source, name) if fields is not None else None
        for field_name in sorted(used or ()):
            if field_name not in fields:  # type: ignore[operator]
                msg = (
                    f"{owner}: unknown field {name}.{field_name} in {source!r}"
                    f"{nearest(field_name, fields)}; {name} has {', '.join(fields)}"  # type: ignore[arg-type]
                )
                raise RuleError(msg)
    known = samples(context)
    types = ", ".join(f"{n} is {article(type_of(context, n))}" for n in names) or "no variables"
    try:
        result = program.execute({name: known[name] for name in names})
    except Exception as ex:  # a failure on values of the right types is a broken rule
        msg = f"{owner}: {source!r} cannot be evaluated ({types}): {ex}"
        raise RuleError(msg) from None
    if boolean and not isinstance(result, bool):
        kind = _CEL_TYPES.get(type(result), type(result).__name__)
        msg = f"{owner}: must be a boolean condition; got {source!r}, {article(kind)}, instead ({types})"
        raise RuleError(msg)
    expression = Expression(source=source, program=program, variables=names)
    fast = compile_simple(source)
    if fast is not None and _agrees(expression, fast, known, context):
        return Expression(source=source, program=program, variables=names, fast=fast)
    return expression


def _variants(cel_type: str, sample: Any, nullable: bool) -> list[Any]:
    variants: dict[str, list[Any]] = {
        "int": [0, 1, 3, 4, 6, -1],
        "double": [0.0, 0.5, 0.75, 1.0, 60.0, 100.0, -1.0],
        "bool": [True, False],
        "string": ["", "c", "product_view", "web"],
        "list(string)": [[], ["p"], ["p", "q"]],
    }
    found = variants.get(cel_type, [sample])
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


def article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def fields_used(source: str, name: str) -> set[str] | None:
    """Return the fields of map ``name`` that ``source`` reads as ``name.field``.

    ``None`` when ``name`` is used otherwise too (indexed, passed whole).

    >>> sorted(fields_used("size(session.abandoned) > 0 && session.events > 1", "session"))
    ['abandoned', 'events']
    >>> fields_used("has(session.x) && session['y'] == 1", "session") is None
    True
    """
    total = len(re.findall(rf"\b{name}\b", source))
    dotted = re.findall(rf"\b{name}\.([A-Za-z_][A-Za-z0-9_]*)", source)
    return set(dotted) if len(dotted) == total else None


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
