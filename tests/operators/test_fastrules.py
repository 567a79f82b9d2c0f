"""Simple rules as Python closures: the same answers as CEL, and CEL keeps the rest."""

from __future__ import annotations

import cel
import pytest

from operators.fastrules import compile_simple
from operators.rules import load_rules, parse_rules
from tests.helpers import settings

VALUES = [
    {"a": 3, "b": 2.5, "s": "web", "t": True, "f": False, "n": None, "m": {"x": 1, "l": ["p"], "z": None}},
    {"a": 0, "b": -1.0, "s": "", "t": True, "f": False, "n": None, "m": {"x": -4, "l": [], "z": None}},
]

SIMPLE = [
    "a > 2 && b <= 2.5",
    "a == 3 || s == 'x'",
    "!(a < 1) && t",
    "a * 2 + 1 >= 7",
    "b * 2.0 - 1.0 > 3.0",
    "size(m.l) > 0 && m.x != 0",
    "size(s) == 3",
    "s + \"!\" == 'web!'",
    "-a < 0",
    "f && n > 1",  # false absorbs the failing side
    "n > 1 && f",
    "t || n > 1",
    "n == null",
    "m.z == null",
    "n > 1",  # fails in both
    "!n",
    "a + b > 1.0",  # int + double: CEL refuses, so must the closure
    "m.missing == 1",
    "a > 2 && n > 1",
    "f || n > 1",
]


def _outcome(run, values):
    try:
        result = run(values)
    except Exception:
        return "error"
    return (type(result), result)


@pytest.mark.parametrize("source", SIMPLE)
def test_a_simple_rule_gives_what_cel_gives(source: str) -> None:
    fast = compile_simple(source)
    assert fast is not None
    program = cel.compile(source)
    for values in VALUES:
        assert _outcome(fast, values) == _outcome(program.execute, values), values


@pytest.mark.parametrize(
    "source", ["m.l.exists(p, p == 'x')", "a in [1, 2]", "a > 1 ? t : f", "a / 2 > 1", "int(b) > 1", "m['x'] > 0"]
)
def test_anything_else_stays_in_cel(source: str) -> None:
    assert compile_simple(source) is None


def test_the_default_rules_all_run_as_closures() -> None:
    rules = load_rules(settings().rules_path)
    expressions = [s.when for s in rules.segments] + [t.when for t in rules.triggers]
    assert all(e.fast is not None for e in expressions)


def test_a_closure_that_disagrees_with_cel_on_samples_is_not_used() -> None:
    # CEL's int division truncates; not in the subset, so CEL runs it.
    rules = parse_rules({"segments": {"s": {"when": "purchases_total / 2 > 1"}}})
    assert rules.segments[0].when.fast is None
