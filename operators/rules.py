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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cel

from journeyflow.errors import RuleError
from operators.profiles import VARIABLES as PROFILE_VARIABLES

__all__ = [
    "MODEL_VARIABLES",
    "EVENT_VARIABLES",
    "SESSION_VARIABLES",
    "TRIGGER_ON",
    "Expression",
    "SegmentRule",
    "TriggerRule",
    "Rules",
    "load_rules",
    "parse_rules",
]

log = logging.getLogger(__name__)

#: Variables that come from the models (known after the models step).
MODEL_VARIABLES = {"purchase_propensity": 0.5, "churn_risk": 0.5, "cluster": 0}

#: Extra variables of event triggers, with sample values for checking.
EVENT_VARIABLES = {
    "event": {
        "event_id": "e",
        "type": "product_view",
        "product_id": "p",
        "category": "c",
        "price": 1.0,
        "quantity": 1,
        "order_id": "o",
        "revenue": 1.0,
        "channel": "web",
        "campaign": "c",
    },
    "product_views": 1,
    "product_bought": False,
}

#: Extra variables of session-close triggers.
SESSION_VARIABLES = {
    "session": {
        "session_id": "s",
        "events": 1,
        "page_views": 1,
        "product_views": 1,
        "add_to_cart": 1,
        "purchases": 0,
        "revenue": 0.0,
        "converted": False,
        "duration_s": 1.0,
        "channel": "web",
        "abandoned": ["p"],
    }
}

TRIGGER_ON = ("event", "session_close", "segment_entry")

_SAMPLE_PROFILE: dict[str, Any] = {
    "events_total": 1,
    "events_7d": 1,
    "events_30d": 1,
    "sessions_total": 1,
    "sessions_30d": 1,
    "purchases_total": 1,
    "purchases_30d": 1,
    "purchases_90d": 1,
    "frequency_30d": 1,
    "frequency_90d": 1,
    "revenue_total": 1.0,
    "monetary_30d": 1.0,
    "monetary_90d": 1.0,
    "has_purchased": True,
    "recency_days": 1.0,
    "days_since_last_seen": 1.0,
    "days_since_first_seen": 1.0,
    "engagement": 0.5,
    "max_product_views_24h": 1,
    "cart_items": 1,
    "cart_value": 1.0,
    "avg_session_s": 1.0,
    "conversion_rate": 0.5,
    "top_category": "c",
    "email_clicks": 0,
    "marketing_consent": True,
}
assert set(_SAMPLE_PROFILE) == set(PROFILE_VARIABLES), "sample values must cover every variable"


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the known variables it reads."""

    source: str
    program: Any
    variables: tuple[str, ...]
    _local: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Return the expression's value; ``values`` must hold its variables."""
        # Updating a kept CEL context costs half of converting a new one. One
        # context per thread: worker threads share this expression.
        context = getattr(self._local, "context", None)
        if context is None:
            context = self._local.context = cel.Context()
        context.update({name: values[name] for name in self.variables})
        return self.program.execute(context)


def _compile(owner: str, source: Any, known: Mapping[str, Any], *, boolean: bool) -> Expression:
    if not isinstance(source, str) or not source.strip():
        msg = f"{owner}: expression must be a non-empty string; got {source!r} instead"
        raise RuleError(msg)
    try:
        program = cel.compile(source)
    except ValueError as ex:
        msg = f"{owner}: does not compile: {ex}"
        raise RuleError(msg) from None
    names = tuple(name for name in program.variables() if name in known)
    # Names CEL reports that are not variables are comprehension bindings
    # (the `p` in `list.exists(p, ...)`) or typos; running the rule once on
    # sample values tells them apart.
    try:
        result = program.execute({name: known[name] for name in names})
    except RuntimeError as ex:
        unknown = sorted(set(program.variables()) - set(known))
        msg = f"{owner}: unknown variable(s) {', '.join(unknown)}: {ex}"
        raise RuleError(msg) from None
    except Exception as ex:  # any other failure on sample values is a broken rule
        msg = f"{owner}: fails on sample values: {type(ex).__name__}: {ex}"
        raise RuleError(msg) from None
    if boolean and not isinstance(result, bool):
        msg = f"{owner}: must be a boolean condition; got {type(result).__name__} {result!r} instead"
        raise RuleError(msg)
    return Expression(source=source, program=program, variables=names)


@dataclass(frozen=True)
class SegmentRule:
    """A named condition over the profile (and model scores)."""

    name: str
    description: str
    when: Expression

    @property
    def uses_models(self) -> bool:
        """Return whether the rule reads model scores (evaluated after the models)."""
        return any(name in MODEL_VARIABLES for name in self.when.variables)


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

    @cached_property
    def variables(self) -> frozenset[str]:
        """Return every variable the trigger reads."""
        names = set(self.when.variables)
        for _, expr in self.payload:
            names.update(expr.variables)
        if self.cooldown_key is not None:
            names.update(self.cooldown_key.variables)
        return frozenset(names)

    @cached_property
    def profile_variables(self) -> tuple[str, ...]:
        """Return the profile variables the trigger reads, in a fixed order."""
        return tuple(sorted(n for n in self.variables if n in PROFILE_VARIABLES))

    @cached_property
    def _fields(self) -> dict[str, frozenset[str] | None]:
        expressions = [self.when, *(e for _, e in self.payload)]
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

    def narrow(self, name: str, value: dict[str, Any]) -> dict[str, Any]:
        """Return the map variable ``name`` with only the fields the rule reads.

        Passing a map to CEL costs in proportion to its size; a rule that
        only reads ``session.abandoned`` gets a one-entry map. A rule that
        uses the map in any other way gets all of it.
        """
        fields = self._fields.get(name)
        if fields is None:
            return value
        return {key: value[key] for key in fields if key in value}


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
            names.update(rule.when.variables)
        for trigger in self.triggers_on("segment_entry"):
            names.update(trigger.variables)
        return tuple(sorted(n for n in names if n in PROFILE_VARIABLES))


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
    _check_keys(owner, doc, ("when", "description"))
    if "when" not in doc:
        msg = f"{owner}: missing key 'when'"
        raise RuleError(msg)
    known = {**_SAMPLE_PROFILE, **MODEL_VARIABLES}
    return SegmentRule(name, str(doc.get("description", "")), _compile(owner, doc["when"], known, boolean=True))


def _trigger(name: str, doc: Any, segment_names: set[str]) -> TriggerRule:
    owner = f"trigger {name!r}"
    doc = _table(owner, doc)
    _check_keys(
        owner,
        doc,
        ("description", "on", "when", "payload", "cooldown_s", "cooldown_key", "event_types", "segment", "holdout"),
    )
    on = doc.get("on")
    if on not in TRIGGER_ON:
        msg = f"{owner}: on must be one of {', '.join(TRIGGER_ON)}; got {on!r} instead"
        raise RuleError(msg)
    known: dict[str, Any] = dict(_SAMPLE_PROFILE)
    if on == "event":
        known.update(EVENT_VARIABLES)
    elif on == "session_close":
        known.update(SESSION_VARIABLES)
    else:
        known.update(MODEL_VARIABLES)
        known["segment"] = "s"
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
    return TriggerRule(
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
    )


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
    journeyflow.errors.RuleError: segment 'bad': unknown variable(s) purchases: ...
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
    for trigger in triggers:
        if trigger.on == "event" and trigger.variables & set(MODEL_VARIABLES):
            msg = (
                f"trigger {trigger.name!r}: model scores are not known on events; "
                "use on = 'segment_entry' with a segment over the scores"
            )
            raise RuleError(msg)
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
    """Evaluate ``expression``; on a run-time failure return ``None`` and log once per rule."""
    try:
        return expression.evaluate(values)
    except Exception as ex:  # a rule's run-time failure must not stop the job
        if rule_name not in failed:
            failed.add(rule_name)
            log.warning("rule failed at run time; treated as false", extra={"rule": rule_name, "error": str(ex)})
        return None
