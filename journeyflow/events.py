"""The input contract: turn raw bytes into a typed `Event` or a `DeadLetter`.

This module is the only place that knows the wire format of click events
(``shared/spec/events.md``). :func:`EventParser.parse` never raises on bad
input: every message either becomes an :class:`Event` or a
:class:`DeadLetter` whose ``reason`` says precisely what is wrong and whose
``raw`` keeps the original text, so the event can be fixed and replayed.

Personal data (``traits.email``, ``traits.phone`` and any configured field)
never leaves this module in clear: events carry only salted hashes of it, and
dead letters carry the raw message with those values replaced by the hashes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from journeyflow.redact import Redactor, cut_at_boundary, digest, fit

__all__ = [
    "EVENT_TYPES",
    "SESSION_EXCLUDED_TYPES",
    "IDENTITY_TYPES",
    "Item",
    "Event",
    "DeadLetter",
    "EventParser",
    "format_ts",
    "parse_ts",
]

EVENT_TYPES = frozenset(
    {
        "page_view",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "checkout_start",
        "purchase",
        "search",
        "email_open",
        "email_click",
        "login",
        "identify",
        "consent",
        "forget",
    }
)

#: Types that are about the user's rights, not their behaviour: they neither
#: start nor extend a session and are not counted in it.
SESSION_EXCLUDED_TYPES = frozenset({"consent", "forget"})

_PRODUCT_TYPES = frozenset({"product_view", "add_to_cart", "remove_from_cart"})
IDENTITY_TYPES = frozenset({"login", "identify"})
"""Event types that link an ``anonymous_id`` to a ``user_id`` (they must carry both)."""

# Epoch milliseconds accepted for `ts`: 1970 up to (not including) 2100.
_MAX_TS_MS = 4_102_444_800_000
_MAX_ID_CHARS = 256
_MAX_EVENT_ID_CHARS = 128


class Item(NamedTuple):
    """One line of a purchase."""

    product_id: str
    category: str | None
    price: float
    quantity: int


class Event(NamedTuple):
    """A valid click event, flattened to the fields the operators use.

    A named tuple rather than a dataclass: it is built for every message, and
    a frozen dataclass costs five times as much to construct.

    ``user`` is the state key: ``user_id`` when the customer is known, else
    ``anonymous_id``. ``ts_ms`` is the event time in epoch milliseconds.
    ``personal`` holds ``(field path, salted hash)`` pairs, never clear text.
    """

    event_id: str
    type: str
    user: str
    ts_ms: int
    source: str
    user_id: str | None = None
    anonymous_id: str | None = None
    channel: str | None = None
    product_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    order_id: str | None = None
    revenue: float = 0.0
    items: tuple[Item, ...] = ()
    cart_value: float | None = None
    campaign: str | None = None
    consent_personalization: bool | None = None
    consent_marketing: bool | None = None
    personal: tuple[tuple[str, str], ...] = ()
    raw: bytes = b""
    """The message as received, for a dead letter if the event turns out late."""
    seq: int = 0
    """Where the event stands in a replay's merged input (0 live). The
    per-customer step applies a replay's items in this order (see
    :func:`operators.identity.in_input_order`).
    Keep it the last field: the replay splices it in (``flows/files.py``)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was not processed, with the reason why.

    ``code`` groups reasons for counting (``missing_field``, ``late``...);
    ``reason`` is the precise, human-readable explanation.
    """

    code: str
    reason: str
    raw: bytes
    source: str
    user: str | None = None
    redacted: bool = False
    truncated_from: int | None = None
    """Length in bytes of the original message when ``raw`` is only its prefix."""
    raw_sha256: str | None = None
    """SHA-256 of the original message when ``raw`` is only its prefix."""

    def to_json(self) -> bytes:
        """Encode as the ``dead_letter`` record of the wire contract."""
        doc: dict[str, Any] = {
            "kind": "dead_letter",
            "reason": self.reason,
            "code": self.code,
            "source": self.source,
        }
        try:
            doc["raw"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            doc["raw"] = base64.b64encode(self.raw).decode("ascii")
            doc["encoding"] = "base64"
        if self.user is not None:
            doc["user_id"] = self.user
        if self.redacted:
            doc["redacted"] = True
        if self.truncated_from is not None:
            doc["truncated_from"] = self.truncated_from
        if self.raw_sha256 is not None:
            doc["raw_sha256"] = self.raw_sha256
        return orjson.dumps(doc)

    def shrunk(self, max_bytes: int) -> DeadLetter | None:
        """Return this dead letter with ``raw`` cut so that ``to_json()`` is at most
        ``max_bytes`` (keeping the original length and digest), or ``None`` when
        not even an empty ``raw`` fits.

        >>> letter = DeadLetter("too_large", "too large", b"x" * 5000, "events/0@1")
        >>> small = letter.shrunk(1000)
        >>> len(small.to_json()) <= 1000, small.truncated_from, len(small.raw_sha256)
        (True, 5000, 64)
        """
        if len(self.to_json()) <= max_bytes:
            return self
        length = self.truncated_from if self.truncated_from is not None else len(self.raw)
        sha = self.raw_sha256 or digest(self.raw)
        reason = self.reason[:_MAX_REASON_CHARS]

        def letter(prefix: bytes) -> DeadLetter:
            return DeadLetter(self.code, reason, prefix, self.source, self.user, self.redacted, length, sha)

        if len(letter(b"").to_json()) > max_bytes:
            return None
        return letter(fit(self.raw, max_bytes, lambda prefix: len(letter(prefix).to_json())))


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _wrong_type(name: str, expected: str, value: Any) -> _Invalid:
    return _Invalid(
        "wrong_type", f"{name} must be {expected}; got {_json_type(value)} instead"
    )


def _text(doc: dict[str, Any], name: str, max_chars: int, path: str = "") -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    label = path + name
    if not isinstance(value, str):
        raise _wrong_type(label, "a string", value)
    if not 0 < len(value) <= max_chars:
        msg = f"{label} must be 1..{max_chars} characters; got {len(value)}"
        raise _Invalid("invalid_value", msg)
    return value


def _identifier(doc: dict[str, Any], name: str, path: str = "") -> str | None:
    """Read an id that producers send as a string or an integer (product ids)."""
    value = doc.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(doc, name, _MAX_ID_CHARS, path)


def _amount(doc: dict[str, Any], name: str, path: str = "") -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type(path + name, "a number", value)
    if value < 0:
        raise _Invalid("invalid_value", f"{path}{name} must be >= 0; got {value}")
    return float(value)


def _quantity(doc: dict[str, Any], path: str = "") -> int:
    value = doc.get("quantity")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(path + "quantity", "an integer", value)
    if value < 1:
        raise _Invalid("invalid_value", f"{path}quantity must be >= 1; got {value}")
    return value


def _object(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong_type(name, "an object", value)
    return value


def parse_ts(value: Any) -> int:
    """Return event time in epoch milliseconds; raise ``ValueError`` if unusable.

    >>> parse_ts("2026-11-22T10:31:00Z")
    1795343460000
    >>> parse_ts("2026-11-22T11:31:00.250+01:00")
    1795343460250
    >>> parse_ts(1795343460000)
    1795343460000
    """
    if isinstance(value, bool):
        raise TypeError("boolean")
    if isinstance(value, int):
        if not 0 <= value < _MAX_TS_MS:
            raise ValueError(f"ts out of range: {value}")
        return value
    if not isinstance(value, str):
        raise TypeError(_json_type(value))
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"ts has no UTC offset: {value!r}")
    ms = round(when.timestamp() * 1000)
    if not 0 <= ms < _MAX_TS_MS:
        raise ValueError(f"ts out of range: {value!r}")
    return ms


def format_ts(ts_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC, dropping zero milliseconds.

    >>> format_ts(1795343460000)
    '2026-11-22T10:31:00Z'
    >>> format_ts(1795343460250)
    '2026-11-22T10:31:00.250Z'
    """
    seconds, ms = divmod(ts_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms:03d}Z" if ms else f"{stamp}Z"


def _salted_hash(salt: bytes, value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8"), key=salt, digest_size=16).hexdigest()


# Longest reason and user id a dead letter keeps (a Kafka key or an id can be
# as long as the message).
_MAX_REASON_CHARS = 512
_MIN_DEAD_LETTER_BYTES = 1024


class EventParser:
    """Validate raw messages against the input contract.

    :arg max_event_bytes: larger messages are dead letters (``too_large``).
    :arg personal_fields: dotted paths (``traits.email``) of personal data.
    :arg salt: key of the hash that replaces personal data.
    :arg max_dead_letter_bytes: bound of every dead letter's JSON encoding,
        below the Kafka producer's ``max_request_size``: a longer message
        keeps a prefix, its length and its SHA-256 (see
        :mod:`journeyflow.redact`).
    """

    def __init__(
        self,
        *,
        max_event_bytes: int,
        personal_fields: tuple[str, ...],
        salt: str,
        max_dead_letter_bytes: int = 262144,
    ) -> None:
        if max_dead_letter_bytes < _MIN_DEAD_LETTER_BYTES:
            msg = f"max_dead_letter_bytes must be >= {_MIN_DEAD_LETTER_BYTES}; got {max_dead_letter_bytes} instead"
            raise ValueError(msg)
        self._max_event_bytes = max_event_bytes
        self._max_dead_letter_bytes = max_dead_letter_bytes
        self._personal = tuple(tuple(p.split(".")) for p in personal_fields)
        self._roots = frozenset(p[0] for p in self._personal)
        self._salt = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
        self._redactor = Redactor(personal_fields, self.hash_personal)

    def parse(self, raw: bytes, source: str, user_hint: str | None = None) -> Event | DeadLetter:
        """Return the event ``raw`` encodes, or a dead letter saying why not.

        ``user_hint`` is the user the transport claims (the Kafka message
        key); when given, the event must belong to that user.
        """
        if len(raw) > self._max_event_bytes:
            reason = f"event too large: {len(raw)} bytes (max {self._max_event_bytes})"
            # Only a window of the prefix is ever looked at: the work is bounded
            # by the dead letter's size, not the message's.
            window = cut_at_boundary(raw, self._max_dead_letter_bytes + 1024)
            clean = self._redactor.text(window)
            return self._bounded("too_large", reason, clean, False, source, None, clean != window, raw)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as ex:
            return self.dead_letter(raw, source, *_json_error(raw, ex))
        if not isinstance(doc, dict):
            kind = _json_type(doc)
            return self.dead_letter(
                raw, source, "not_an_object", f"event must be a JSON object; got {kind} instead", doc
            )
        try:
            event = self._event(doc, source, raw)
        except _Invalid as ex:
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
        get = doc.get
        event_id = get("event_id")
        if type(event_id) is not str or not 0 < len(event_id) <= _MAX_EVENT_ID_CHARS:
            if event_id is None:
                raise _Invalid("missing_field", "missing field: event_id")
            _text(doc, "event_id", _MAX_EVENT_ID_CHARS)
        kind = get("type")
        if type(kind) is not str or kind not in EVENT_TYPES:
            if kind is None:
                raise _Invalid("missing_field", "missing field: type")
            if not isinstance(kind, str):
                raise _wrong_type("type", "a string", kind)
            raise _Invalid("unknown_type", f"unknown type: {kind[:64]}")
        user_id = get("user_id")
        if user_id is not None and (type(user_id) is not str or not 0 < len(user_id) <= 256):
            _text(doc, "user_id", _MAX_ID_CHARS)
        anonymous_id = get("anonymous_id")
        if anonymous_id is not None and (
            type(anonymous_id) is not str or not 0 < len(anonymous_id) <= 256
        ):
            _text(doc, "anonymous_id", _MAX_ID_CHARS)
        if user_id is None and anonymous_id is None:
            raise _Invalid("missing_field", "missing field: user_id (or anonymous_id)")
        if kind in IDENTITY_TYPES and (user_id is None or anonymous_id is None):
            missing = "user_id" if user_id is None else "anonymous_id"
            raise _Invalid("missing_field", f"missing field: {missing} ({kind} links both ids)")
        ts = get("ts")
        if ts is None:
            raise _Invalid("missing_field", "missing field: ts")
        try:
            ts_ms = parse_ts(ts)
        except TypeError:
            expected = "an RFC 3339 string or integer epoch milliseconds"
            raise _wrong_type("ts", expected, ts) from None
        except ValueError:
            raise _Invalid("invalid_ts", f"unparsable ts: {str(ts)[:64]!r}") from None

        props = get("properties")
        if type(props) is not dict:
            props = _object(doc, "properties")
        context = get("context")
        if type(context) is not dict:
            context = _object(doc, "context")
        channel = context.get("channel")
        if channel is not None and type(channel) is not str:
            raise _wrong_type("context.channel", "a string", channel)
        consent = context.get("consent")
        if consent is None:
            if kind == "consent":
                raise _Invalid("missing_field", "missing field: context.consent")
            personalization = marketing = None
        else:
            personalization, marketing = _consent(consent)
        personal = ()
        for root in self._roots:
            if root in doc:
                personal = self._hashed_personal(doc)
                break
        user = user_id if user_id is not None else anonymous_id

        if kind in _PRODUCT_TYPES:
            product_id = props.get("product_id")
            if type(product_id) is not str or not 0 < len(product_id) <= _MAX_ID_CHARS:
                product_id = self._product_id(props)
            category = props.get("category")
            if category is not None and (type(category) is not str or len(category) > _MAX_ID_CHARS):
                _text(props, "category", _MAX_ID_CHARS, "properties.")
            price = props.get("price")
            if price is not None:
                if (type(price) is float or type(price) is int) and price >= 0:
                    price = float(price)
                else:
                    _amount(props, "price", "properties.")
            quantity = 1 if kind == "product_view" else _quantity(props, "properties.")
            # Positional: about half the cost of keywords for a named tuple.
            return Event(
                event_id, kind, user, ts_ms, source, user_id, anonymous_id, channel,
                product_id, category, price, quantity, None, 0.0, (), None, None,
                personalization, marketing, personal, raw,
            )  # fmt: skip
        extra: dict[str, Any] = {}
        if kind == "purchase":
            if props.get("order_id") is None:
                raise _Invalid("missing_field", "missing field: properties.order_id")
            extra["order_id"] = _identifier(props, "order_id", "properties.")
            revenue = _amount(props, "revenue", "properties.")
            if revenue is None:
                raise _Invalid("missing_field", "missing field: properties.revenue")
            extra["revenue"] = revenue
            _text(props, "currency", 16, "properties.")
            extra["items"] = _items(props.get("items"))
        elif kind == "checkout_start":
            extra["cart_value"] = _amount(props, "cart_value", "properties.")
        elif kind in ("email_open", "email_click"):
            extra["campaign"] = _text(props, "campaign", _MAX_ID_CHARS, "properties.")
        return Event(
            event_id,
            kind,
            user,
            ts_ms,
            source,
            user_id,
            anonymous_id,
            channel,
            consent_personalization=personalization,
            consent_marketing=marketing,
            personal=personal,
            raw=raw,
            **extra,
        )

    @staticmethod
    def _product_id(props: dict[str, Any]) -> str:
        if props.get("product_id") is None:
            raise _Invalid("missing_field", "missing field: properties.product_id")
        return _identifier(props, "product_id", "properties.")  # type: ignore[return-value]

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
        """Return a dead letter for ``raw`` with personal data replaced by hashes
        and its encoding bounded by ``max_dead_letter_bytes``.

        ``doc`` is ``raw`` already decoded, if it could be.
        """
        if doc is None:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                doc = None
        user = None
        if isinstance(doc, dict):
            candidate = doc.get("user_id") or doc.get("anonymous_id")
            if isinstance(candidate, str) and len(candidate) <= _MAX_ID_CHARS:
                user = candidate
        if doc is not None:
            doc, redacted = self._redactor.document(doc)
            clean, complete = (orjson.dumps(doc) if redacted else raw), True
        else:
            window = cut_at_boundary(raw, self._max_dead_letter_bytes + 1024)
            clean, complete = self._redactor.text(window), len(window) == len(raw)
            redacted = clean != window
        return self._bounded(code, reason, clean, complete, source, user, redacted, raw)

    def _bounded(
        self,
        code: str,
        reason: str,
        clean: bytes,
        complete: bool,
        source: str,
        user: str | None,
        redacted: bool,
        raw: bytes,
    ) -> DeadLetter:
        """Return the dead letter, its ``raw`` cut to fit ``max_dead_letter_bytes``.

        ``clean`` is the redacted text, ``complete`` unless it is only a window
        of it; ``raw`` is the original, whose length and digest a cut dead
        letter keeps.
        """
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[:_MAX_REASON_CHARS] + "..."
        budget = self._max_dead_letter_bytes
        if complete:
            letter = DeadLetter(code, reason, clean, source, user, redacted)
            # Escaping makes a byte at most 6 ("\u0001"): small ones need no encoding to know.
            if (len(clean) + len(reason)) * 6 + 1024 <= budget or len(letter.to_json()) <= budget:
                return letter
        sha = digest(raw)

        def encoded(prefix: bytes) -> int:
            return len(DeadLetter(code, reason, prefix, source, user, redacted, len(raw), sha).to_json())

        return DeadLetter(code, reason, fit(clean, budget, encoded), source, user, redacted, len(raw), sha)


def _items(value: Any) -> tuple[Item, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _wrong_type("properties.items", "an array", value)
    items = []
    for n, entry in enumerate(value):
        path = f"properties.items[{n}]."
        if not isinstance(entry, dict):
            raise _wrong_type(path[:-1], "an object", entry)
        if entry.get("product_id") is None:
            raise _Invalid("missing_field", f"missing field: {path}product_id")
        items.append(
            Item(
                product_id=_identifier(entry, "product_id", path),  # type: ignore[arg-type]
                category=_text(entry, "category", _MAX_ID_CHARS, path),
                price=_amount(entry, "price", path) or 0.0,
                quantity=_quantity(entry, path),
            )
        )
    return tuple(items)


def _consent(value: Any) -> tuple[bool | None, bool | None]:
    """Return the (personalization, marketing) flags; either may be absent."""
    if not isinstance(value, dict):
        raise _wrong_type("context.consent", "an object", value)
    flags = []
    for name in ("personalization", "marketing"):
        flag = value.get(name)
        if flag is not None and not isinstance(flag, bool):
            raise _wrong_type(f"context.consent.{name}", "a boolean", flag)
        flags.append(flag)
    if flags == [None, None]:
        msg = "context.consent must hold personalization or marketing; got neither"
        raise _Invalid("missing_field", msg)
    return flags[0], flags[1]


def _json_error(raw: bytes, ex: orjson.JSONDecodeError) -> tuple[str, str]:
    if not raw.strip():
        return "empty", "empty message"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return "invalid_utf8", f"invalid UTF-8 at byte {bad.start}"
    # orjson reports the position in characters, as in "... (char 57)".
    return "invalid_json", f"invalid JSON at char {ex.pos}: {ex.msg}"
