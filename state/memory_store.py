"""The profile store in dicts (:class:`InMemoryStore`): tests, and replays that do not
write Redis; it encodes and applies records as :class:`~state.redis_store.RedisStore` does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import orjson

from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange
from state.store import Restore, StoreRecord, check_record, later_ts, row_changes, segments_json

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """A :class:`StateStore` in dicts, with the same encoding as :class:`RedisStore`.

    Thread-safe (one lock), so several bytewax workers may share one.
    There is no TTL: nothing expires. Memory grows with the users stored.

    >>> store = InMemoryStore()
    >>> store.apply([SegmentChange("u1", 0, ("vip",), (), ("vip",), None, {})])
    >>> store.members("vip"), store.profile("u1")
    ({'u1'}, {'segments': '["vip"]'})
    """

    def __init__(self) -> None:
        self._profiles: dict[str, dict[str, str]] = {}
        self._segments: dict[str, set[str]] = {}
        self._aliases: dict[str, str] = {}
        self._erased: dict[str, int] = {}
        """When each customer with linked devices was erased (ms; no expiry here)."""
        self._lock = threading.Lock()

    def apply(self, records: Sequence[StoreRecord]) -> None:
        for record in records:
            check_record(record)
        with self._lock:
            for record in records:
                self._apply_one(record)

    def _apply_one(self, record: StoreRecord) -> None:
        user = record.user_id
        if isinstance(record, IdentityMerge):
            if record.ts_ms > self._erased.get(user, -1):  # (as redis_commands._LINK_ALIAS)
                self._aliases[record.anonymous_id] = user
        elif isinstance(record, ProfileRow):
            updates, deletes = row_changes(record)
            fields = self._profiles.setdefault(user, {})
            if not later_ts(fields.get("updated_at"), updates["updated_at"]):
                del updates["updated_at"]
            segments = updates.pop("segments", None)
            fields.update(updates)
            for name in deletes:
                fields.pop(name, None)
            if segments is not None:
                self._sync(user, record.segments, ())
        elif isinstance(record, SegmentChange):
            self._sync(user, record.segments, record.exited)
        elif isinstance(record, Restore):
            fields = dict(record.fields)
            segments = orjson.loads(fields.get("segments", "[]"))
            self._sync(user, None, ())
            self._profiles[user] = fields
            self._sync(user, segments, ())
        else:
            self._sync(user, None, record.segments)
            for device in record.aliases:
                self._aliases.pop(device, None)
            if record.aliases:
                self._erased[user] = record.ts_ms

    def _sync(self, user: str, segments: Iterable[str] | None, leave: Iterable[str]) -> None:
        # As redis_commands._SYNC_SEGMENTS does in Redis: None deletes the profile.
        fields = self._profiles.get(user)
        old = orjson.loads(fields["segments"]) if fields and "segments" in fields else []
        keep = set(segments) if segments is not None else set()
        for segment in [*leave, *old]:
            if segment not in keep:
                self._remove_member(segment, user)
        if segments is None:
            self._profiles.pop(user, None)
            return
        for segment in keep:
            self._segments.setdefault(segment, set()).add(user)
        self._profiles.setdefault(user, {})["segments"] = segments_json(segments)

    def _remove_member(self, segment: str, user: str) -> None:
        # Like Redis, a set that becomes empty no longer exists.
        members = self._segments.get(segment)
        if members is not None:
            members.discard(user)
            if not members:
                del self._segments[segment]

    def profile(self, user_id: str) -> dict[str, str] | None:
        with self._lock:
            fields = self._profiles.get(user_id)
            return dict(fields) if fields else None

    def alias(self, anonymous_id: str) -> str | None:
        with self._lock:
            return self._aliases.get(anonymous_id)

    def members(self, segment: str) -> set[str]:
        with self._lock:
            return set(self._segments.get(segment, ()))

    def segments(self) -> dict[str, set[str]]:
        """Return every non-empty segment with its members (a copy)."""
        with self._lock:
            return {name: set(users) for name, users in self._segments.items()}

    def close(self) -> None:
        return None
