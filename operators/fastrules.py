"""Simple CEL rules as Python closures: no context conversion, no round trip into CEL.

Most rules are comparisons joined by ``&&`` / ``||`` / ``!`` over a few
variables, with literals, ``size()`` and ``+ - *``. For those, :func:`compile_simple`
parses the expression (a small recursive-descent parser over that subset) and
returns a closure over the variables' mapping; anything else (macros, method
calls, indexing, ``in``, ``?:``, division) returns ``None`` and the rule keeps
running in CEL. The caller checks the closure against CEL on sample values of
the registered types before using it (:mod:`operators.rules`).

Semantics follow CEL where a rule can tell: ``&&`` and ``||`` take booleans
only and absorb an error on one side when the other side decides
(``false && error`` is false, like CEL's commutative logic); ``!`` takes a
boolean only; a missing variable or field raises ``KeyError``; ``null`` in a
comparison or arithmetic raises. Run-time types are the registry's types
(``tests/operators/test_variables.py``), which the start-up check covers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["compile_simple"]

Closure = Callable[[Mapping[str, Any]], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!()+\-*.]))"
)
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_ERROR: Final = object()


class _NotSimple(Exception):
    """The expression uses something outside the subset: CEL runs it."""


def _tokens(source: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(source):
        if source[at:].strip() == "":
            break
        match = _TOKEN.match(source, at)
        if match is None:
            raise _NotSimple
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise _NotSimple
        self.at += 1
        return self.tokens[self.at - 1]

    def expect(self, text: str) -> None:
        if self.take()[1] != text:
            raise _NotSimple

    def expression(self) -> Closure:
        left = self.conjunction()
        while self.peek() == "||":
            self.take()
            left = _or(left, self.conjunction())
        return left

    def conjunction(self) -> Closure:
        left = self.relation()
        while self.peek() == "&&":
            self.take()
            left = _and(left, self.relation())
        return left

    def relation(self) -> Closure:
        left = self.sum()
        op = self.peek()
        if op in _COMPARE:
            self.take()
            right = self.sum()
            compare = _COMPARE[op]  # type: ignore[index]
            return lambda v: compare(left(v), right(v))
        return left

    def sum(self) -> Closure:
        left = self.product()
        while self.peek() in ("+", "-"):
            left = _arith(_ARITH[self.take()[1]], left, self.product())
        return left

    def product(self) -> Closure:
        left = self.unary()
        while self.peek() == "*":
            self.take()
            left = _arith(operator.mul, left, self.unary())
        return left

    def unary(self) -> Closure:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda v: not _boolean(inner(v))
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return lambda v: -_number(inner(v))
        return self.primary()

    def primary(self) -> Closure:
        kind, text = self.take()
        if kind == "num":
            number: Any = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda v: number
        if kind == "str":
            if "\\" in text:
                raise _NotSimple  # escapes: leave them to CEL
            literal = text[1:-1]
            return lambda v: literal
        if text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if kind != "name":
            raise _NotSimple
        if text in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[text]
            return lambda v: constant
        if text == "size":
            self.expect("(")
            inner = self.expression()
            self.expect(")")
            return lambda v: len(inner(v))
        if self.peek() == "(":
            raise _NotSimple  # another function
        if self.peek() == ".":
            self.take()
            field_kind, field = self.take()
            if field_kind != "name" or self.peek() in (".", "("):
                raise _NotSimple  # a method call or a deeper path
            return lambda v: v[text][field]
        return lambda v: v[text]


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        msg = f"no such overload: a boolean operator needs bool; got {type(value).__name__} instead"
        raise TypeError(msg)
    return value


def _number(value: Any) -> Any:
    if type(value) not in (int, float):
        msg = f"no such overload: arithmetic needs numbers; got {type(value).__name__} instead"
        raise TypeError(msg)
    return value


def _side(part: Closure, values: Mapping[str, Any]) -> Any:
    try:
        return _boolean(part(values))
    except Exception:  # CEL's logic absorbs an error the other side decides
        return _ERROR


def _and(left: Closure, right: Closure) -> Closure:
    def both(values: Mapping[str, Any]) -> bool:
        a = _side(left, values)
        if a is False:
            return False
        b = _side(right, values)
        if b is False:
            return False
        if a is _ERROR or b is _ERROR:
            raise TypeError("an operand of && failed")
        return True

    return both


def _or(left: Closure, right: Closure) -> Closure:
    def either(values: Mapping[str, Any]) -> bool:
        a = _side(left, values)
        if a is True:
            return True
        b = _side(right, values)
        if b is True:
            return True
        if a is _ERROR or b is _ERROR:
            raise TypeError("an operand of || failed")
        return False

    return either


def _arith(op: Callable[[Any, Any], Any], left: Closure, right: Closure) -> Closure:
    def apply(values: Mapping[str, Any]) -> Any:
        a, b = left(values), right(values)
        if type(a) is not type(b) or type(a) not in (int, float, str) or (op is not operator.add and type(a) is str):
            msg = f"no such overload: {type(a).__name__} and {type(b).__name__}"
            raise TypeError(msg)
        return op(a, b)

    return apply


def compile_simple(source: str) -> Closure | None:
    """Return a closure computing ``source`` from a mapping of variables, or ``None`` if not simple.

    >>> rule = compile_simple("sessions_30d >= 4 && purchases_30d <= 2")
    >>> rule({"sessions_30d": 4, "purchases_30d": 1}), rule({"sessions_30d": 3, "purchases_30d": 1})
    (True, False)
    >>> compile_simple("size(session.abandoned) > 0")({"session": {"abandoned": ["p"]}})
    True
    >>> compile_simple("session.abandoned.exists(p, p == 'x')") is None
    True
    """
    try:
        parser = _Parser(_tokens(source))
        closure = parser.expression()
    except _NotSimple:
        return None
    if parser.at != len(parser.tokens):
        return None
    return closure
