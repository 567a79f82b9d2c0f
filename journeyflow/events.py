"""The input contract: the event types, a typed `Event`, a `DeadLetter`, and event time.

This module, :mod:`journeyflow.event_parser` (which turns raw bytes into an
:class:`Event` or a :class:`DeadLetter`) and :mod:`journeyflow.event_fields` (which
checks one field) are the only place that knows the wire format of click events
(``shared/spec/events.md``). :func:`EventParser.parse` never raises on bad
input: every message either becomes an :class:`Event` or a
:class:`DeadLetter` whose ``reason`` says precisely what is wrong and whose
``raw`` keeps the original text, so the event can be fixed and replayed.

Personal data (``traits.email``, ``traits.phone`` and any configured field)
never leaves the parser in clear: events carry only salted hashes of it, and
dead letters carry the raw message with those values replaced by the hashes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from journeyflow.redact import digest, fit
# Defined in a compiled module (every output record formats times); imported from here.
from journeyflow.time_text import EPOCH_ORDINAL, format_ts

__all__ = [
    "EVENT_TYPES",
    "SESSION_EXCLUDED_TYPES",
    "IDENTITY_TYPES",
    "Item",
    "Event",
    "DeadLetter",
    "json_type",
    "MAX_ID_CHARS",
    "MAX_TS_MS",
    "EPOCH_ORDINAL",
    "MAX_REASON_CHARS",
    "format_ts",
    "parse_ts",
    "NoUtcOffset",
    "TsOutOfRange",
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

IDENTITY_TYPES = frozenset({"login", "identify"})
"""Event types that link an ``anonymous_id`` to a ``user_id`` (they must carry both)."""

MAX_TS_MS = 4_102_444_800_000
"""Epoch milliseconds an event time may have: 1970 up to (not including) 2100."""
MAX_ID_CHARS = 256
# Longest reason and user id a dead letter keeps (a Kafka key or an id can be
# as long as the message).
MAX_REASON_CHARS = 512


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
    :func:`operators.in_order.in_input_order`).
    Keep it the last field: the replay splices it in (``flows/replay_clock.py``)."""


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
        reason = self.reason[:MAX_REASON_CHARS]

        def letter(prefix: bytes) -> DeadLetter:
            return DeadLetter(self.code, reason, prefix, self.source, self.user, self.redacted, length, sha)

        if len(letter(b"").to_json()) > max_bytes:
            return None
        return letter(fit(self.raw, max_bytes, lambda prefix: len(letter(prefix).to_json())))


def json_type(value: Any) -> str:
    """Name the JSON type of a decoded value, for reasons ("got a string instead")."""
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


class NoUtcOffset(ValueError):
    """A time without a UTC offset: which instant it names is not known."""


class TsOutOfRange(ValueError):
    """A time before the epoch or from :data:`MAX_TS_MS` on; the message says the range."""

    def __init__(self, value: object) -> None:
        shown = repr(value[:64]) if isinstance(value, str) else str(value)
        super().__init__(f"ts out of range: {shown}; it must be from {format_ts(0)} to before {format_ts(MAX_TS_MS)}")


def parse_ts(value: Any) -> int:
    """Return event time in epoch milliseconds; raise ``ValueError`` if unusable
    (:class:`NoUtcOffset` or :class:`TsOutOfRange`, whose messages say what is expected,
    when only the offset is missing or the time is outside the range).

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
        if not 0 <= value < MAX_TS_MS:
            raise TsOutOfRange(value)
        return value
    if not isinstance(value, str):
        raise TypeError(json_type(value))
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        msg = (
            f"ts has no UTC offset: {value[:64]!r}; it must be an RFC 3339 time with one "
            "(Z or +HH:MM, e.g. '2026-11-22T10:31:00Z') or integer epoch milliseconds"
        )
        raise NoUtcOffset(msg)
    ms = round(when.timestamp() * 1000)
    if not 0 <= ms < MAX_TS_MS:
        raise TsOutOfRange(value)
    return ms

