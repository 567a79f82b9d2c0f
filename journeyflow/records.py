"""Records that flow between steps and out of the dataflow.

Input side: :class:`RawRecord` (a message as the transport delivered it) and
:class:`EndOfInput` (a replay's announcement to each user that the input is
over). Output side: one small class per output, each with ``to_json()``
producing exactly the wire format of ``shared/spec/events.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from journeyflow.events import format_ts

__all__ = [
    "RawRecord",
    "EndOfInput",
    "SessionSummary",
    "Tally",
]


class RawRecord(NamedTuple):
    """A message before parsing: its bytes, where it came from, its key."""

    data: bytes
    source: str
    key: str | None = None


class EndOfInput(NamedTuple):
    """Sent by a replay to every user once the input is exhausted.

    ``ts_ms`` is the replay's last event time: time-driven changes (sessions
    that close, segments that expire) are judged at that time.
    """

    ts_ms: int
    user: str


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A closed session, as written to ``sessions.jsonl`` / the sessions topic."""

    session_id: str
    user_id: str
    start_ms: int
    end_ms: int
    events: int
    page_views: int
    product_views: int
    add_to_cart: int
    purchases: int
    revenue: float
    channel: str | None = None

    @property
    def converted(self) -> bool:
        """Return whether the session contains a purchase."""
        return self.purchases > 0

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form as a dict."""
        return {
            "kind": "session",
            "session_id": self.session_id,
            "user_id": self.user_id,
            "start": format_ts(self.start_ms),
            "end": format_ts(self.end_ms),
            "duration_s": (self.end_ms - self.start_ms) / 1000,
            "events": self.events,
            "page_views": self.page_views,
            "product_views": self.product_views,
            "add_to_cart": self.add_to_cart,
            "purchases": self.purchases,
            "revenue": round(self.revenue, 2),
            "converted": self.converted,
            "channel": self.channel,
        }

    def to_json(self) -> bytes:
        """Encode for a sink."""
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Tally:
    """What one user's state counted, emitted when the state ends or the input does.

    A replay's summary adds these up; ``processed + duplicates`` of all users
    plus the dead letters must equal the messages read.
    """

    user_id: str
    processed: int
    duplicates: int
    skipped: int = 0
    """Events of users who refused personalization (counted in ``processed``)."""
