"""Turn raw bytes into a typed :class:`~journeyflow.events.Event` or a
:class:`~journeyflow.events.DeadLetter` (the input contract, ``shared/spec/events.md``).

:meth:`EventParser.parse` never raises on bad input: every message either becomes an
event or a dead letter whose ``reason`` says precisely what is wrong and whose ``raw``
keeps the original text, so the event can be fixed and replayed. Personal data never
leaves the parser in clear (see :mod:`journeyflow.events`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from journeyflow.dead_letters import DeadLetters
from journeyflow.event_fields import (
    Invalid,
    amount_field,
    consent_field,
    identifier_field,
    items_field,
    json_error,
    object_field,
    quantity_field,
    text_field,
    wrong_type,
)
from journeyflow.event_time import utc_ms
from journeyflow.events import (
    EVENT_TYPES,
    IDENTITY_TYPES,
    MAX_ID_CHARS,
    DeadLetter,
    Event,
    Item,
    NoUtcOffset,
    TsOutOfRange,
    json_type,
    parse_ts,
)
from journeyflow.redact import Redactor

__all__ = ["EventParser"]

_PRODUCT_TYPES: Final = frozenset({"product_view", "add_to_cart", "remove_from_cart"})
_MAX_EVENT_ID_CHARS: Final = 128
# Event is a named tuple built with tuple.__new__: its generated __new__ runs interpreted
# (a lambda made by namedtuple), about a twentieth of a line's parse. Every field is given.
_new: Final = tuple.__new__

# What every event reads from journeyflow.events (not compiled), held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_EVENT: Final = Event
_EVENT_TYPES: Final = EVENT_TYPES
_IDENTITY_TYPES: Final = IDENTITY_TYPES
_MAX_ID_CHARS: Final = MAX_ID_CHARS


def _salted_hash(salt: bytes, value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8"), key=salt, digest_size=16).hexdigest()


class EventParser:
    """Validate raw messages against the input contract.

    :arg max_event_bytes: larger messages are dead letters (``too_large``).
    :arg personal_fields: dotted paths (``traits.email``) of personal data.
    :arg salt: key of the hash that replaces personal data.
    :arg max_dead_letter_bytes: bound of every dead letter's JSON encoding,
        below the Kafka producer's ``max_request_size``: a longer message
        keeps a prefix, its length and its SHA-256 (see
        :mod:`journeyflow.dead_letters`).
    """

    def __init__(
        self,
        *,
        max_event_bytes: int,
        personal_fields: tuple[str, ...],
        salt: str,
        max_dead_letter_bytes: int = 262144,
    ) -> None:
        self._max_event_bytes = max_event_bytes
        self._personal = tuple(tuple(p.split(".")) for p in personal_fields)
        self._roots = frozenset(p[0] for p in self._personal)
        self._salt = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
        self._letters = DeadLetters(Redactor(personal_fields, self.hash_personal), max_dead_letter_bytes)

    def parse(self, raw: bytes, source: str, user_hint: str | None = None) -> Event | DeadLetter:
        """Return the event ``raw`` encodes, or a dead letter saying why not.

        ``user_hint`` is the user the transport claims (the Kafka message
        key); when given, the event must belong to that user.
        """
        if len(raw) > self._max_event_bytes:
            reason = f"event too large: {len(raw)} bytes (max {self._max_event_bytes})"
            return self._letters.too_large(raw, source, reason)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as ex:
            return self.dead_letter(raw, source, *json_error(raw, ex))
        if not isinstance(doc, dict):
            kind = json_type(doc)
            return self.dead_letter(
                raw, source, "not_an_object", f"event must be a JSON object; got {kind} instead", doc
            )
        try:
            event = self._event(doc, source, raw)
        except Invalid as ex:
            return self.dead_letter(raw, source, ex.code, ex.reason, doc)
        if user_hint is not None and user_hint != event.user and user_hint != event.anonymous_id:
            # A device's login may be keyed by its anonymous id, like the device's other events.
            reason = f"message key {user_hint!r} does not match the event's user {event.user!r}"
            return self.dead_letter(raw, source, "key_mismatch", reason, doc)
        return event

    def hash_personal(self, value: str) -> str:
        """Return the salted hash that stands for a personal value."""
        return _salted_hash(self._salt, value)

    def _event(self, doc: dict[str, Any], source: str, raw: bytes) -> Event:
        # The common case is checked with cheap `type(...) is` tests; the
        # helpers that build precise reasons only run when a check fails.
        # doc.get called directly, not through a bound method in a local: compiled, the
        # direct call is a C dict lookup, the bound one a generic Python call.
        event_id = doc.get("event_id")
        if type(event_id) is not str or not 0 < len(event_id) <= _MAX_EVENT_ID_CHARS:
            if event_id is None:
                raise Invalid("missing_field", "missing field: event_id")
            text_field(doc, "event_id", _MAX_EVENT_ID_CHARS)
        kind = doc.get("type")
        if type(kind) is not str or kind not in _EVENT_TYPES:
            if kind is None:
                raise Invalid("missing_field", "missing field: type")
            if not isinstance(kind, str):
                raise wrong_type("type", "a string", kind)
            raise Invalid("unknown_type", f"unknown type: {kind[:64]}")
        user_id = doc.get("user_id")
        if user_id is not None and (type(user_id) is not str or not 0 < len(user_id) <= 256):
            text_field(doc, "user_id", _MAX_ID_CHARS)
        anonymous_id = doc.get("anonymous_id")
        if anonymous_id is not None and (
            type(anonymous_id) is not str or not 0 < len(anonymous_id) <= 256
        ):
            text_field(doc, "anonymous_id", _MAX_ID_CHARS)
        if user_id is None and anonymous_id is None:
            raise Invalid("missing_field", "missing field: user_id (or anonymous_id)")
        if kind in _IDENTITY_TYPES and (user_id is None or anonymous_id is None):
            missing = "user_id" if user_id is None else "anonymous_id"
            raise Invalid("missing_field", f"missing field: {missing} ({kind} links both ids)")
        ts = doc.get("ts")
        if ts is None:
            raise Invalid("missing_field", "missing field: ts")
        # The common form read directly (journeyflow.event_time); any other, and every
        # refusal with its reason, by parse_ts.
        ts_ms = utc_ms(ts) if type(ts) is str else -1
        if ts_ms < 0:
            try:
                ts_ms = parse_ts(ts)
            except TypeError:
                expected = "an RFC 3339 string or integer epoch milliseconds"
                raise wrong_type("ts", expected, ts) from None
            except (NoUtcOffset, TsOutOfRange) as ex:
                raise Invalid("invalid_ts", str(ex)) from None
            except ValueError:
                raise Invalid("invalid_ts", f"unparsable ts: {str(ts)[:64]!r}") from None

        props = doc.get("properties")
        if type(props) is not dict:
            props = object_field(doc, "properties")
        context = doc.get("context")
        if type(context) is not dict:
            context = object_field(doc, "context")
        channel = context.get("channel")
        if channel is not None and type(channel) is not str:
            raise wrong_type("context.channel", "a string", channel)
        consent = context.get("consent")
        if consent is None:
            if kind == "consent":
                raise Invalid("missing_field", "missing field: context.consent")
            personalization = marketing = None
        else:
            personalization, marketing = consent_field(consent)
        personal: tuple[tuple[str, str], ...] = ()
        for root in self._roots:
            if root in doc:
                personal = self._hashed_personal(doc)
                break
        # (Both None was a dead letter above: one of them is the user.)
        user: str = user_id if user_id is not None else anonymous_id  # type: ignore[assignment]

        if kind in _PRODUCT_TYPES:
            product_id = props.get("product_id")
            if type(product_id) is not str or not 0 < len(product_id) <= _MAX_ID_CHARS:
                product_id = self._product_id(props)
            category = props.get("category")
            if category is not None and (type(category) is not str or len(category) > _MAX_ID_CHARS):
                text_field(props, "category", _MAX_ID_CHARS, "properties.")
            price = props.get("price")
            if price is not None:
                if (type(price) is float or type(price) is int) and price >= 0:
                    price = float(price)
                else:
                    amount_field(props, "price", "properties.")
            quantity = 1 if kind == "product_view" else quantity_field(props, "properties.")
            return _new(_EVENT, (  # type: ignore[no-any-return]
                event_id, kind, user, ts_ms, source, user_id, anonymous_id, channel,
                product_id, category, price, quantity, None, 0.0, (), None, None,
                personalization, marketing, personal, raw, 0,
            ))  # fmt: skip
        # Event's defaults, set below for the kinds that carry them.
        order_id: str | None = None
        revenue: float | None = 0.0
        items: tuple[Item, ...] = ()
        cart_value: float | None = None
        campaign: str | None = None
        if kind == "purchase":
            if props.get("order_id") is None:
                raise Invalid("missing_field", "missing field: properties.order_id")
            order_id = identifier_field(props, "order_id", "properties.")
            revenue = amount_field(props, "revenue", "properties.")
            if revenue is None:
                raise Invalid("missing_field", "missing field: properties.revenue")
            text_field(props, "currency", 16, "properties.")
            items = items_field(props.get("items"))
        elif kind == "checkout_start":
            cart_value = amount_field(props, "cart_value", "properties.")
        elif kind in ("email_open", "email_click"):
            campaign = text_field(props, "campaign", _MAX_ID_CHARS, "properties.")
        return _new(_EVENT, (  # type: ignore[no-any-return]
            event_id, kind, user, ts_ms, source, user_id, anonymous_id, channel,
            None, None, None, 1, order_id, revenue, items, cart_value, campaign,
            personalization, marketing, personal, raw, 0,
        ))  # fmt: skip

    @staticmethod
    def _product_id(props: dict[str, Any]) -> str:
        if props.get("product_id") is None:
            raise Invalid("missing_field", "missing field: properties.product_id")
        return identifier_field(props, "product_id", "properties.")  # type: ignore[return-value]

    def _hashed_personal(self, doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        found: list[tuple[str, str]] = []
        for path in self._personal:
            value: Any = doc
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                found.append((".".join(path), self.hash_personal(str(value))))
        return tuple(found)

    def dead_letter(
        self, raw: bytes, source: str, code: str, reason: str, doc: Any = None
    ) -> DeadLetter:
        """Return a dead letter for ``raw`` (:meth:`~journeyflow.dead_letters.DeadLetters.letter`):
        personal data replaced by hashes, its encoding bounded by ``max_dead_letter_bytes``.

        ``doc`` is ``raw`` already decoded, if it could be.
        """
        return self._letters.letter(raw, source, code, reason, doc)
