"""Load segment and trigger rules (CEL, ``rules.toml``) once, at start-up.

Rules are Google's Common Expression Language; each expression is compiled
and checked by :mod:`operators.expressions`: it must compile, every variable
it names must exist where the rule is evaluated, and a condition must yield a
boolean. A failure names the rule and the problem. The compiled rules are
:mod:`operators.rule_types`.

Evaluation passes a rule only the variables it reads: the cost of a CEL call
is dominated by converting its context, so a small context keeps a rule at a
microsecond or two. A rule that fails at run time (a division by zero, a
missing map key) counts as false, and the failure is logged once per rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from journeyflow.errors import RuleError
from operators.expressions import Expression, compile_expression
from operators.rule_types import TRIGGER_ON, Rules, SegmentRule, TriggerRule
from operators.variables import RECOMMENDATIONS, nearest, samples
from operators import goals

__all__ = ["check_clusters", "load_rules", "parse_rules", "recommendation_payloads"]

# The learned segments' names (cluster:0 .. cluster:k-1, [clusters] k): no rule may take them.
_CLUSTER = re.compile(r"cluster:(\d+)")


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
        compile_expression(owner, doc["when"], "segment", boolean=True),
        None if exit_when is None else compile_expression(f"{owner} exit_when", exit_when, "segment", boolean=True),
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
    if on == "segment_entry" and segment not in segment_names and not _CLUSTER.fullmatch(str(segment)):
        named = ", ".join(sorted(segment_names)) or "none defined"
        msg = f"{owner}: segment must name a segment ({named}) or a learned cluster:N; got {segment!r} instead"
        msg += nearest(str(segment), segment_names)
        raise RuleError(msg)
    if on != "segment_entry" and segment is not None:
        msg = f"{owner}: segment is only for on = 'segment_entry'"
        raise RuleError(msg)
    event_types = doc.get("event_types")
    if event_types is not None:
        from journeyflow.events import EVENT_TYPES

        if on != "event" or not isinstance(event_types, list) or not set(event_types) <= EVENT_TYPES:
            msg = (
                f"{owner}: event_types must list event types ({', '.join(sorted(EVENT_TYPES))}; on = 'event'); "
                f"got {event_types!r} instead"
            )
            unknown = [t for t in event_types if t not in EVENT_TYPES] if isinstance(event_types, list) else []
            msg += nearest(str(unknown[0]), EVENT_TYPES) if unknown else ""
            raise RuleError(msg)
        event_types = frozenset(event_types)
    payload_doc = doc.get("payload", {})
    if not isinstance(payload_doc, dict):
        msg = f"{owner}: payload must be a table of name = CEL expression; got {payload_doc!r} instead"
        raise RuleError(msg)
    payload = tuple(
        (key, compile_expression(f"{owner} payload {key!r}", source, known, boolean=False))
        for key, source in payload_doc.items()
    )
    cooldown_key = doc.get("cooldown_key")
    # -- closed loop: the goal's condition is checked on a sample trigger of this rule.
    variants = goals.parse_variants(owner, doc.get("variants"), compile_=compile_expression, context=known)
    sample = samples(known)
    sample_payload = {key: expr.evaluate(sample) for key, expr in payload}
    for variant in variants:
        sample_payload.update((key, expr.evaluate(sample)) for key, expr in variant.payload)
    goal = goals.parse_goal(owner, doc.get("goal"), payload_sample=sample_payload)
    rule = TriggerRule(
        name=name,
        description=str(doc.get("description", "")),
        on=on,
        when=compile_expression(owner, doc.get("when", "true"), known, boolean=True),
        payload=payload,
        cooldown_ms=int(_number(owner, doc, "cooldown_s", 0, 0, 10 * 365 * 86400) * 1000),
        cooldown_key=None if cooldown_key is None else compile_expression(f"{owner} cooldown_key", cooldown_key, known, boolean=False),
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
    if kind == "segment" and name.startswith("cluster:"):
        msg = f"segment {name!r}: names cluster:N are the learned clusters' ([clusters] k); choose another name"
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


def check_clusters(rules: Rules, k: int) -> None:
    """Raise :class:`RuleError` if a trigger waits for a cluster that ``k`` clusters do not have."""
    for rule in rules.triggers:
        found = _CLUSTER.fullmatch(rule.segment or "")
        if found is not None and int(found.group(1)) >= k:
            msg = (
                f"trigger {rule.name!r}: segment {rule.segment!r} is no cluster: "
                f"[clusters] k = {k} learns cluster:0 .. cluster:{k - 1}"
            )
            raise RuleError(msg)
