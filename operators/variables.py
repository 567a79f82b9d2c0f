"""Every variable a rule can read, defined once: name, CEL type, getter, what changes it, sample.

Rule checking (:mod:`operators.rules`), evaluation (the per-user step and the
audience step), features and outputs all read these tables; nothing else
lists variables. A rule is evaluated in one of four contexts, and each
context offers a fixed set of top-level names (:data:`CONTEXTS`):

* ``segment``: the profile (:data:`PROFILE`) and the model scores (:data:`MODEL`);
* ``event``: the profile, ``product_views`` / ``product_bought``
  (:data:`EVENT_LOCALS`) and the map ``event`` (:data:`EVENT_FIELDS`);
* ``session_close``: the profile and the map ``session`` (:data:`SESSION_FIELDS`);
* ``segment_entry``: the profile, the scores and ``segment``.

Profile getters compute their value from a :class:`~operators.profiles.View`
as of its time, so a rule over ``recency_days`` sees time pass even when the
user sends nothing. ``recency_days`` is -1 for a user who never bought (rules
guard it with ``purchases_total > 0``; outputs show null).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from operator import attrgetter
from typing import Any, Final

from journeyflow.events import Event
from operators import views as v
from operators.profiles import Profile, View
from operators.rounding import round_digits
from operators.sessions import Session

__all__ = [
    "Variable",
    "EventScope",
    "SessionScope",
    "ANY_EVENT",
    "SESSION_START",
    "SESSION_CLOSE",
    "PROFILE",
    "MODEL",
    "EVENT_LOCALS",
    "EVENT_FIELDS",
    "SESSION_FIELDS",
    "ENTRY",
    "RECOMMENDATIONS",
    "RECOMMEND",
    "MAPS",
    "CONTEXTS",
    "changed_by",
    "nearest",
    "samples",
    "type_of",
    "variable_entry",
]

ANY_EVENT: Final = "*"
SESSION_START: Final = "session_start"
SESSION_CLOSE: Final = "session_close"


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable (or one field of the ``event`` / ``session`` maps)."""

    name: str
    cel_type: str
    """The CEL type rules see: ``int``, ``double``, ``bool``, ``string``, ``list(string)``, ``map``."""
    get: Callable[[Any], Any]
    """Computes the value from its context's scope (a View, an EventScope, a SessionScope, scores)."""
    sample: Any
    """A value of the right type, to check rules at start-up."""
    changed_by: frozenset[str] = frozenset()
    """Event types (``*`` for any, ``session_start``, ``session_close``) that can change it apart from time."""
    nullable: bool = False
    """May be null at run time (an event field the event type does not carry)."""


class EventScope:
    """What an event trigger reads besides the profile: the event and the profile as of it.

    (Plain classes, not NamedTuples, like :class:`~operators.profiles.View`: one is
    made per product view, and compiled by mypyc a native class costs less to make.)
    """

    __slots__ = ("view", "event")

    def __init__(self, view: View, event: Event) -> None:
        self.view = view
        self.event = event


class SessionScope:
    """What a session-close trigger reads: the closed session and the profile after it."""

    __slots__ = ("session", "session_id", "profile")

    def __init__(self, session: Session, session_id: str, profile: Profile) -> None:
        self.session = session
        self.session_id = session_id
        self.profile = profile


_ANY = frozenset({ANY_EVENT})
_PURCHASE = frozenset({"purchase"})
_CART = frozenset({"add_to_cart", "remove_from_cart", "purchase"})
_START = frozenset({SESSION_START})
_CLOSE = frozenset({SESSION_CLOSE})


def _p(name: str, cel_type: str, get: Callable[[View], Any], sample: Any, changed: frozenset[str]) -> Variable:
    return Variable(name, cel_type, get, sample, changed)


def _table(entries: Iterable[Variable]) -> dict[str, Variable]:
    return {entry.name: entry for entry in entries}


PROFILE: Final[dict[str, Variable]] = _table(
    [
        _p("events_total", "int", lambda w: w.profile.events_total, 1, _ANY),
        _p("events_7d", "int", lambda w: v.events_since(w, 7), 1, _ANY),
        _p("events_30d", "int", lambda w: v.events_since(w, 30), 1, _ANY),
        _p("sessions_total", "int", v.sessions_total, 1, _START),
        _p("sessions_30d", "int", v.sessions_30d, 1, _START),
        _p("purchases_total", "int", lambda w: w.profile.purchases_total, 1, _PURCHASE),
        _p("purchases_30d", "int", lambda w: v.purchases_since(w, 30), 1, _PURCHASE),
        _p("purchases_90d", "int", lambda w: v.purchases_since(w, 90), 1, _PURCHASE),
        _p("frequency_30d", "int", lambda w: v.purchases_since(w, 30), 1, _PURCHASE),
        _p("frequency_90d", "int", lambda w: v.purchases_since(w, 90), 1, _PURCHASE),
        _p("revenue_total", "double", lambda w: round_digits(w.profile.revenue_total, 2), 1.0, _PURCHASE),
        _p("monetary_30d", "double", lambda w: v.revenue_since(w, 30), 1.0, _PURCHASE),
        _p("monetary_90d", "double", lambda w: v.revenue_since(w, 90), 1.0, _PURCHASE),
        _p("has_purchased", "bool", lambda w: w.profile.purchases_total > 0, True, _PURCHASE),
        _p("recency_days", "double", lambda w: v.days_between(w.profile.last_purchase_ms, w.now_ms), 1.0, _PURCHASE),
        _p("days_since_last_seen", "double", lambda w: v.days_between(w.profile.last_seen_ms, w.now_ms), 1.0, _ANY),
        _p("days_since_first_seen", "double", lambda w: v.days_between(w.profile.first_seen_ms, w.now_ms), 1.0, _ANY),
        _p("engagement", "double", v.engagement, 0.5, _ANY),
        _p("max_product_views_24h", "int", lambda w: w.profile.peak_views, 1, frozenset({"product_view"})),
        _p("cart_items", "int", v.cart_items, 1, _CART),
        _p("cart_value", "double", v.cart_value, 1.0, _CART),
        _p("avg_session_s", "double", v.avg_session_s, 1.0, _CLOSE),
        _p("conversion_rate", "double", v.conversion_rate, 0.5, _CLOSE),
        _p("top_category", "string", v.top_category, "c", _ANY),
        _p("email_clicks", "int", lambda w: w.profile.email_clicks, 0, frozenset({"email_click"})),
        _p("marketing_consent", "bool", lambda w: w.profile.marketing_consent, True, _ANY),
    ]
)
"""Profile variables, read in every rule context; getters take a :class:`View`."""

MODEL: dict[str, Variable] = _table(
    [
        Variable("purchase_propensity", "double", lambda s: s["purchase_propensity"], 0.5, nullable=True),
        Variable("churn_risk", "double", lambda s: s["churn_risk"], 0.5, nullable=True),
        Variable("cluster", "int", lambda s: s["cluster"], 0, nullable=True),
    ]
)
"""Model scores (known after the models step); getters take the scores mapping.

A segment over a score the user does not have yet keeps its last answer; a
segment-entry trigger reads it as null."""

EVENT_LOCALS: Final[dict[str, Variable]] = _table(
    [
        Variable("product_views", "int", v.event_product_views, 1),
        Variable("product_bought", "bool", v.event_product_bought, False),
    ]
)
"""Event-trigger variables about the event's product; getters take an :class:`EventScope`."""


def _e(name: str, cel_type: str, sample: Any, nullable: bool = True) -> Variable:
    return Variable(name, cel_type, attrgetter(name), sample, nullable=nullable)


EVENT_FIELDS: dict[str, Variable] = _table(
    [
        _e("event_id", "string", "e", nullable=False),
        _e("type", "string", "product_view", nullable=False),
        _e("product_id", "string", "p"),
        _e("category", "string", "c"),
        _e("price", "double", 1.0),
        _e("quantity", "int", 1, nullable=False),
        _e("order_id", "string", "o"),
        _e("revenue", "double", 1.0, nullable=False),
        _e("channel", "string", "web"),
        _e("campaign", "string", "c"),
    ]
)
"""Fields of the ``event`` map of event triggers; getters take the :class:`Event`."""


def _s(name: str, cel_type: str, get: Callable[[SessionScope], Any], sample: Any, nullable: bool = False) -> Variable:
    return Variable(name, cel_type, get, sample, nullable=nullable)


SESSION_FIELDS: dict[str, Variable] = _table(
    [
        _s("session_id", "string", lambda s: s.session_id, "s"),
        _s("events", "int", lambda s: s.session.events, 1),
        _s("page_views", "int", lambda s: s.session.page_views, 1),
        _s("product_views", "int", lambda s: s.session.product_views, 1),
        _s("add_to_cart", "int", lambda s: s.session.add_to_cart, 1),
        _s("purchases", "int", lambda s: s.session.purchases, 0),
        _s("revenue", "double", lambda s: s.session.revenue, 0.0),
        _s("converted", "bool", lambda s: s.session.purchases > 0, False),
        _s("duration_s", "double", lambda s: (s.session.end_ms - s.session.start_ms) / 1000, 1.0),
        _s("channel", "string", lambda s: s.session.channel, "web", nullable=True),
        _s("abandoned", "list(string)", v.abandoned, ["p"]),
    ]
)
"""Fields of the ``session`` map of session-close triggers; getters take a :class:`SessionScope`."""

ENTRY: dict[str, Variable] = _table([Variable("segment", "string", lambda name: name, "s")])
"""What a segment-entry trigger adds: the segment entered."""

RECOMMENDATIONS = "recommendations"
RECOMMEND: dict[str, Variable] = _table(
    [Variable(RECOMMENDATIONS, "list(string)", lambda products: list(products), ["p1", "p2", "p3"])]
)
"""The customer's recommended products, best first (every trigger context).

Known only after the recommender's list step (``operators/recommend_steps.py``),
so trigger payloads alone may read it, in expressions over nothing else; the
list step fills those payload entries in (``rules.check_recommendations``)."""

MAPS: dict[str, dict[str, Variable]] = {"event": EVENT_FIELDS, "session": SESSION_FIELDS}
"""The map variables and their fields."""

CONTEXTS: dict[str, tuple[str, ...]] = {
    "segment": tuple(PROFILE) + tuple(MODEL),
    "event": tuple(PROFILE) + tuple(EVENT_LOCALS) + ("event",) + tuple(RECOMMEND),
    "session_close": tuple(PROFILE) + ("session",) + tuple(RECOMMEND),
    "segment_entry": tuple(PROFILE) + tuple(MODEL) + tuple(ENTRY) + tuple(RECOMMEND),
}
"""The top-level names a rule may read, per context."""

_TOP: dict[str, Variable] = {**PROFILE, **MODEL, **EVENT_LOCALS, **ENTRY, **RECOMMEND}


def samples(context: str) -> dict[str, Any]:
    """Return a sample value of every name ``context`` offers (maps as maps of samples)."""
    found: dict[str, Any] = {}
    for name in CONTEXTS[context]:
        fields = MAPS.get(name)
        found[name] = _TOP[name].sample if fields is None else {f.name: f.sample for f in fields.values()}
    return found


def variable_entry(name: str) -> Variable:
    """Return the registry entry of top-level variable ``name`` (not a map)."""
    return _TOP[name]


def type_of(context: str, name: str) -> str:
    """Return the CEL type of top-level ``name`` in ``context`` (``map`` for the maps)."""
    return "map" if name in MAPS else _TOP[name].cel_type


def changed_by(names: Iterable[str]) -> frozenset[str]:
    """Return what can change any of the named profile variables (others are ignored).

    >>> sorted(changed_by(("purchases_30d", "max_product_views_24h", "churn_risk")))
    ['product_view', 'purchase']
    """
    found: set[str] = set()
    for name in names:
        entry = PROFILE.get(name)
        if entry is not None:
            found |= entry.changed_by
    return frozenset(found)


def nearest(name: str, known: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest known name, or ``""``.

    >>> nearest("prise", EVENT_FIELDS)
    " (did you mean 'price'?)"
    """
    close = get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def values(view: View, names: Iterable[str]) -> dict[str, Any]:
    """Return the named profile variables as of ``view.now_ms``."""
    table = PROFILE  # (a local: compiled, a module global is a dict look-up at every use)
    return {name: table[name].get(view) for name in names}


def fields_of(scope: Any, fields: Mapping[str, Variable]) -> dict[str, Any]:
    """Return the map of ``fields`` read from ``scope`` (an Event or a SessionScope)."""
    return {name: entry.get(scope) for name, entry in fields.items()}
