"""Conversion goals and message variants of trigger rules (parsed with the rules file).

A trigger rule's ``goal`` says which later event of the same customer counts
as the trigger's conversion: events of ``event_types`` (default a
``purchase``), within ``window_s`` of the trigger's time (default 3 days),
for which the CEL condition ``when`` holds (default ``true``). ``when`` reads
``event`` (the candidate event) and ``trigger`` (``rule``, ``variant`` and
``payload`` of the trigger it would convert), so a goal can ask for a click
on the very campaign the trigger sent::

    goal = { event_types = ["email_click"], window_s = 86400,
             when = "has(trigger.payload.campaign) && event.campaign == trigger.payload.campaign" }

A rule's ``variants`` are named payload tables added to the rule's payload
(a variant's entry wins over the rule's of the same name); a bandit picks one
per trigger (:mod:`operators.loop`). Every variant's payload is computed
where the trigger fires, since only there are the variables known.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from journeyflow.events import Event
    from operators.expressions import Expression

__all__ = [
    "DEFAULT_WINDOW_S",
    "HOLDOUT",
    "TREATMENT",
    "Goal",
    "Variant",
    "GoalEvent",
    "goal_event",
    "holdout_draw",
    "parse_goal",
    "parse_variants",
    "variant_payloads",
]

#: Attribution window when a goal names none: 3 days.
DEFAULT_WINDOW_S = 3 * 86400
#: The arm of held-out would-be triggers, and of treated triggers of a rule without variants.
HOLDOUT = "holdout"
TREATMENT = "treatment"

_MAX_WINDOW_S = 365 * 86400
# Consent and erasure are about rights, not behaviour: never a conversion.
_NOT_GOALS = frozenset({"consent", "forget"})

Compile = Callable[..., "Expression"]


@dataclass(frozen=True)
class Goal:
    """What counts as a trigger's conversion, and for how long it is followed."""

    event_types: frozenset[str] = frozenset({"purchase"})
    window_ms: int = DEFAULT_WINDOW_S * 1000
    when: Expression | None = None
    """``None``: every event of ``event_types`` counts."""


@dataclass(frozen=True)
class Variant:
    """A named message variant: its own payload entries, added to the rule's."""

    name: str
    payload: tuple[tuple[str, Expression], ...]


class GoalEvent(NamedTuple):
    """A customer's event that may convert open triggers (sent by the per-user step).

    Only events of a goal's types are sent, a small share of all events.
    ``fields`` is the ``event`` map a goal's condition reads.
    """

    user: str
    ts_ms: int
    event_id: str
    type: str
    value: float
    fields: dict[str, Any]


def holdout_draw(rule: str, user: str) -> float:
    """Return ``user``'s fixed draw in [0, 1) for ``rule``: held out when below the rule's share.

    The one definition of the holdout assignment: the engine and the
    generator's simulated responses both use it, so they agree on who is
    held out. A hash, not a random draw: the same on every worker and run.

    >>> round(holdout_draw("cart_abandonment", "u1"), 6)
    0.579755
    """
    digest = hashlib.blake2b(f"holdout\x00{rule}\x00{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def goal_event(event: Event) -> GoalEvent:
    """Return the goal candidate of a (deduplicated, on-time) ``event``."""
    return GoalEvent(
        user=event.user,
        ts_ms=event.ts_ms,
        event_id=event.event_id,
        type=event.type,
        value=event.revenue,
        fields={
            "event_id": event.event_id,
            "type": event.type,
            "product_id": event.product_id,
            "category": event.category,
            "price": event.price,
            "quantity": event.quantity,
            "order_id": event.order_id,
            "revenue": event.revenue,
            "channel": event.channel,
            "campaign": event.campaign,
        },
    )


def _fail(message: str) -> None:
    from journeyflow.errors import RuleError

    raise RuleError(message)


def parse_goal(owner: str, doc: Any, *, payload_sample: Mapping[str, Any]) -> Goal:
    """Return the goal of a rule from its ``goal`` table (``None``: the default goal).

    The condition is checked on sample values: an ``event`` with every event
    field, and a trigger of this rule whose payload is ``payload_sample``.
    """
    if doc is None:
        return Goal()
    if not isinstance(doc, dict):
        msg = f"{owner}: goal must be a table; got {doc!r} instead"
        _fail(msg)
    unknown = sorted(set(doc) - {"event_types", "window_s", "when"})
    if unknown:
        msg = f"{owner}: goal: unknown key(s) {', '.join(unknown)}; allowed: event_types, when, window_s"
        _fail(msg)
    from journeyflow.events import EVENT_TYPES

    types = doc.get("event_types", ["purchase"])
    allowed = EVENT_TYPES - _NOT_GOALS
    if not isinstance(types, list) or not types or not set(types) <= allowed:
        msg = f"{owner}: goal event_types must be a non-empty list of {', '.join(sorted(allowed))}; got {types!r} instead"
        _fail(msg)
    window = doc.get("window_s", DEFAULT_WINDOW_S)
    if isinstance(window, bool) or not isinstance(window, int) or not 0 < window <= _MAX_WINDOW_S:
        msg = f"{owner}: goal window_s must be an integer in 1..{_MAX_WINDOW_S}; got {window!r} instead"
        _fail(msg)
    when = None
    if "when" in doc:
        when = _compile_goal(f"{owner} goal", doc["when"], payload_sample)
    return Goal(event_types=frozenset(types), window_ms=window * 1000, when=when)


def _compile_goal(owner: str, source: Any, payload_sample: Mapping[str, Any]) -> Expression:
    """Compile a goal condition over ``event`` and ``trigger``; check it on sample values."""
    import cel

    from operators.expressions import Expression, compile_message
    from operators.variables import EVENT_FIELDS, nearest

    if not isinstance(source, str) or not source.strip():
        msg = f"{owner}: condition must be a non-empty string; got {source!r} instead"
        _fail(msg)
    try:
        program = cel.compile(source)
    except ValueError as ex:
        msg = f"{owner}: does not compile: {source!r}: {compile_message(ex)}"
        _fail(msg)
    sample = {
        "event": {f.name: f.sample for f in EVENT_FIELDS.values()},
        "trigger": {"rule": "r", "variant": TREATMENT, "payload": dict(payload_sample)},
    }
    fields = ", ".join(EVENT_FIELDS)
    for name in re.findall(r"\bevent\.([A-Za-z_]\w*)", source):
        if name not in EVENT_FIELDS:
            msg = f"{owner}: unknown field event.{name} in {source!r}{nearest(name, EVENT_FIELDS)}; event has {fields}"
            _fail(msg)
    names = tuple(n for n in program.variables() if n in sample)
    try:
        result = program.execute({n: sample[n] for n in names})
    except Exception as ex:  # unknown names and fields, wrong types: a broken goal
        reason = str(ex)
        if isinstance(ex, KeyError) or re.fullmatch(r"'\w+'", reason):
            # CEL's missing key is its bare name: say what it is and where it was looked for.
            reason = f"no field {reason} in the sample event or trigger (the payload has {', '.join(payload_sample) or 'nothing'})"
        msg = (
            f"{owner}: {source!r} cannot be evaluated on a sample event and trigger "
            f"(event has {fields}; trigger has rule, variant, payload): {reason}"
        )
        _fail(msg)
    if not isinstance(result, bool):
        msg = f"{owner}: must be a boolean condition; got {source!r} = {result!r} instead"
        _fail(msg)
    return Expression(source=source, program=program, variables=names)


def parse_variants(owner: str, doc: Any, *, compile_: Compile, context: str) -> tuple[Variant, ...]:
    """Return a rule's variants from its ``variants`` table (``None``: no variants).

    Each variant is ``name = { payload key = CEL expression, ... }``. One
    variant is no choice to make, so a rule declares none or at least two.
    """
    if doc is None:
        return ()
    if not isinstance(doc, dict) or len(doc) < 2:
        msg = f"{owner}: variants must be a table of at least two name = {{ payload }} entries; got {doc!r} instead"
        _fail(msg)
    variants = []
    for name, payload in doc.items():
        if name in (HOLDOUT, TREATMENT) or not name.replace("_", "").replace("-", "").isalnum() or len(name) > 64:
            msg = f"{owner}: variant name must be 1..64 letters, digits, '_' or '-', not holdout/treatment; got {name!r} instead"
            _fail(msg)
        if not isinstance(payload, dict):
            msg = f"{owner}: variant {name!r} must be a table of name = CEL expression; got {payload!r} instead"
            _fail(msg)
        compiled = tuple(
            (key, compile_(f"{owner} variant {name!r} payload {key!r}", source, context, boolean=False))
            for key, source in payload.items()
        )
        variants.append(Variant(name, compiled))
    return tuple(variants)


def variant_payloads(
    variants: tuple[Variant, ...],
    base: dict[str, Any],
    evaluate: Callable[[Expression], Any],
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Return ``(variant name, full payload)`` for each variant: ``base`` plus its own entries.

    >>> variant_payloads((), {"a": 1}, lambda e: e)
    ()
    """
    return tuple((v.name, {**base, **{key: evaluate(expr) for key, expr in v.payload}}) for v in variants)
