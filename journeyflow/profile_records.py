"""The records that leave the dataflow and carry a user's profile: segment changes and profile rows.

Plain classes with a written-out ``__init__`` rather than frozen dataclasses (see
:class:`_Plain`): the steps make one or two per user. :mod:`journeyflow.records`
re-exports them with the other output records; import them from there.
"""

from __future__ import annotations

from typing import Any

import orjson

from journeyflow.events import format_ts

__all__ = ["SNAPSHOT_FIELDS", "ProfileRow", "SegmentChange"]


SNAPSHOT_FIELDS = (
    "recency_days",
    "frequency_30d",
    "monetary_30d",
    "engagement",
    "purchase_propensity",
    "churn_risk",
)
"""Profile fields carried in every segment change (the contract's ``profile``)."""


class _Plain:
    """Equality and repr of a plain record class, field by field (``__slots__``), as a dataclass's.

    :class:`SegmentChange` and :class:`ProfileRow` are plain classes with a
    written-out ``__init__``, not frozen dataclasses: a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, 0.96 against
    0.22 us a segment change and 0.70 against 0.25 us a row (``timeit``), and
    the steps make one or two of them per user at the end of input. Nothing
    writes their fields after construction, but for the recommender's lists
    part, which adds the list to each segment change it receives (its profile
    and ``fields``: :func:`operators.recommend_lists.with_list`), and to a
    replay's final row, before either is published: the audience step makes
    them for it alone.
    """

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # (what a dataclass with dict fields has in effect)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__qualname__}({shown})"


class SegmentChange(_Plain):
    """A user entered or left segments (``segment-changes``).

    ``cause`` says what caused it: ``event`` (``cause_event_id`` is set),
    ``session_close``, ``time`` (time passed: timers live, end of a replay),
    ``consent`` (the user refused personalization: they leave every segment),
    or ``scores`` (a model score or cluster changed). ``fields``: the
    ``profile`` fields published: the contract's snapshot and every variable
    the entered and exited segments' rules read (why they changed).
    """

    __slots__ = ("user_id", "ts_ms", "entered", "exited", "segments", "cause_event_id", "profile", "cause", "fields")

    def __init__(
        self,
        user_id: str,
        ts_ms: int,
        entered: tuple[str, ...],
        exited: tuple[str, ...],
        segments: tuple[str, ...],
        cause_event_id: str | None,
        profile: dict[str, Any],
        cause: str = "event",
        fields: tuple[str, ...] = SNAPSHOT_FIELDS,
    ) -> None:
        self.user_id = user_id
        self.ts_ms = ts_ms
        self.entered = entered
        self.exited = exited
        self.segments = segments
        self.cause_event_id = cause_event_id
        self.profile = profile
        self.cause = cause
        self.fields = fields

    def to_json(self) -> bytes:
        """Encode per the wire contract."""
        return orjson.dumps(
            {
                "kind": "segment_change",
                "user_id": self.user_id,
                "ts": format_ts(self.ts_ms),
                "entered": list(self.entered),
                "exited": list(self.exited),
                "segments": list(self.segments),
                "cause_event_id": self.cause_event_id,
                "cause": self.cause,
                "profile": {key: self.profile.get(key) for key in self.fields},
            }
        )


class ProfileRow(_Plain):
    """A user's profile fields for the profile store and ``profiles.jsonl``.

    ``fields`` holds JSON-ready values; ``segments`` is ``None`` when this row
    does not change the segment list. Stores apply rows as partial updates
    (field by field), so two writers of disjoint fields do not clash.
    ``final``: the user's last row of a replay (``profiles.jsonl``).
    """

    __slots__ = ("user_id", "ts_ms", "fields", "segments", "final")

    def __init__(
        self,
        user_id: str,
        ts_ms: int,
        fields: dict[str, Any],
        segments: tuple[str, ...] | None = None,
        final: bool = False,
    ) -> None:
        self.user_id = user_id
        self.ts_ms = ts_ms
        self.fields = fields
        self.segments = segments
        self.final = final

    def to_dict(self) -> dict[str, Any]:
        """Return the row as one JSON object (``profiles.jsonl``)."""
        doc = {"user_id": self.user_id, **self.fields, "updated_at": format_ts(self.ts_ms)}
        if self.segments is not None:
            doc["segments"] = list(self.segments)
        return doc

    def to_json(self) -> bytes:
        """Encode as one JSON object: ``to_dict()``'s bytes, without copying the fields.

        The fields' own encoding goes between the user id and the rest (a final
        row holds about 45 fields, copied into a new dict before).
        """
        fields = self.fields
        if "user_id" in fields or "updated_at" in fields or "segments" in fields:
            return orjson.dumps(self.to_dict())  # (a field named as a key of ours: the dict's order)
        body = orjson.dumps(fields)
        parts = [b'{"user_id":', orjson.dumps(self.user_id)]
        if len(body) > 2:
            parts += [b",", body[1:-1]]
        parts += [b',"updated_at":"', format_ts(self.ts_ms).encode(), b'"']
        if self.segments is not None:
            parts += [b',"segments":', orjson.dumps(list(self.segments))]
        parts.append(b"}")
        return b"".join(parts)
