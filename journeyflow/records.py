"""Records that leave the dataflow: one small class per output, each with ``to_json()``
producing exactly the wire format of ``shared/spec/events.md``.

The records that flow between steps are in :mod:`journeyflow.step_records`; the two that
carry a user's profile (:class:`SegmentChange`, :class:`ProfileRow`) are defined in
:mod:`journeyflow.profile_records` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from journeyflow.events import format_ts
from journeyflow.profile_records import SNAPSHOT_FIELDS, ProfileRow, SegmentChange
from operators.rounding import round_digits

__all__ = [
    "SessionSummary",
    "SNAPSHOT_FIELDS",
    "SegmentChange",
    "Tombstone",
    "IdentityMerge",
    "Trigger",
    "ProfileRow",
    "ModelReport",
]


@dataclass(slots=True)
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
    checkouts: int = 0
    """``checkout_start`` events (the report's view -> cart -> checkout -> purchase funnel)."""

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
            "checkouts": self.checkouts,
            "purchases": self.purchases,
            "revenue": round_digits(self.revenue, 2),  # (round()'s float, without its decimal conversion)
            "converted": self.converted,
            "channel": self.channel,
        }

    def to_json(self) -> bytes:
        """Encode for a sink."""
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A user's data was erased (``forget``); downstream stores delete theirs.

    ``segments`` lists the segments the user was in, so a store can remove
    the memberships; it is not part of the wire record.
    """

    user_id: str
    ts_ms: int
    cause_event_id: str | None
    segments: tuple[str, ...] = ()
    reason: str = "forget"
    """``forget`` (erasure, published), ``consent`` or ``merge`` (store deletion only)."""
    aliases: tuple[str, ...] = ()
    """Anonymous ids linked to the user: a store deletes their aliases too (erasure)."""

    def to_json(self) -> bytes:
        """Encode per the wire contract."""
        return orjson.dumps(
            {
                "kind": "tombstone",
                "reason": self.reason,
                "user_id": self.user_id,
                "ts": format_ts(self.ts_ms),
                "cause_event_id": self.cause_event_id,
            }
        )


@dataclass(frozen=True, slots=True)
class IdentityMerge:
    """An anonymous device joined a customer (``login`` / ``identify``).

    Published on the segment-change output; a store points the device's
    alias at the customer (``jf:alias:<anonymous_id>``).
    """

    user_id: str
    anonymous_id: str
    ts_ms: int
    cause_event_id: str | None

    def to_json(self) -> bytes:
        """Encode per the wire contract."""
        return orjson.dumps(
            {
                "kind": "merge",
                "user_id": self.user_id,
                "anonymous_id": self.anonymous_id,
                "ts": format_ts(self.ts_ms),
                "cause_event_id": self.cause_event_id,
            }
        )


@dataclass(frozen=True, slots=True)
class Trigger:
    """A trigger fired for a user (``triggers``), or, with ``variant ==
    "holdout"``, the record that it would have fired (the holdouts output)."""

    trigger_id: str
    rule: str
    user_id: str
    ts_ms: int
    cause_event_id: str | None
    variant: str
    payload: dict[str, Any]
    options: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Every variant's payload, when the rule has variants: the loop step
    (:mod:`operators.loop`) picks one. Not part of the wire record."""

    def to_json(self) -> bytes:
        """Encode per the wire contract."""
        return orjson.dumps(
            {
                "kind": "trigger",
                "trigger_id": self.trigger_id,
                "rule": self.rule,
                "user_id": self.user_id,
                "ts": format_ts(self.ts_ms),
                "cause_event_id": self.cause_event_id,
                "variant": self.variant,
                "payload": self.payload,
            }
        )


@dataclass(frozen=True, slots=True)
class ModelReport:
    """The models' online quality figures and clusters, at the end of a replay."""

    model_version: str
    tasks: dict[str, dict[str, Any]]
    clusters: list[dict[str, Any]]
    silhouette: float | None
    scored: int
    state: bytes | None = None
    """The pickled model state, to export (``models.bin``)."""
