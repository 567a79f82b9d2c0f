"""The profile store: what downstream services read about a user, live.

:class:`StateStore` is the interface; :class:`~state.redis_store.RedisStore`
writes Redis, :class:`~state.memory_store.InMemoryStore` keeps dicts (tests, and
replays that do not write Redis). Both apply the same records the same way, with
the encoding and record checks of this module.

Redis layout (``prefix`` defaults to ``jf:``):

- ``{prefix}profile:{user_id}``: a hash of the user's profile fields, as
  text. Strings as they are, numbers as ``str()``, booleans as ``true`` /
  ``false``, lists and objects as JSON; ``updated_at`` is RFC 3339 UTC and
  ``segments`` a JSON array of the user's segments.
- ``{prefix}segment:{name}``: a set of the user ids in segment ``name``.
- ``{prefix}alias:{anonymous_id}``: the customer id an anonymous device was
  linked to (by a ``login`` or ``identify``), with the profiles' TTL. A page
  that only knows the cookie reads the alias, then the customer's profile.

Records are applied in order:

- :class:`~journeyflow.records.ProfileRow` sets its fields (a ``None`` value
  deletes that field), ``segments`` when the row has them, and ``updated_at``
  unless the hash already holds a later one: rows reach the store along two
  paths of the flow (the per-user step, and the step after the models), so an
  older row can arrive after a newer one, and ``updated_at`` must not go back.
- :class:`~journeyflow.records.SegmentChange` sets the hash's ``segments``.
- :class:`~journeyflow.records.Tombstone` deletes the hash (and, on erasure,
  the aliases of the user's devices, and remembers for :data:`ERASED_GUARD_S`
  when the user was erased: ``{prefix}erased:{digest of the user id}``).
- :class:`~journeyflow.records.IdentityMerge` points the device's alias at
  the customer (the device's own hash goes with the tombstone that the merge
  sends through the step after the models), unless the customer was erased at
  or after the merge's time: merges travel from the device step straight to
  the store, the erasure through the models and audience steps, so a merge can
  arrive after the erasure that should have removed its alias.

Memberships follow the segment lists: whenever a record sets a user's
``segments`` (or deletes the hash), the user joins the sets of the new list
and leaves those of the list the hash held before, plus the segments the
record says were exited (a hash that expired holds no list). So the sets
agree with the hashes even when a change is not the one expected after the
previous: after a restart the flow replays its unfinished epoch, and what the
models decide then may differ from the first time (another learning order),
so a replayed change may enter other segments than the change it repeats.
In Redis each such update is one Lua script, atomic per record.

Every step is idempotent given the batch (set a field, sync a user's
segments to a list, delete a key), so a batch that failed half-way is simply
applied again from its start, in order, and ends in the same state.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from journeyflow.events import format_ts
from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone

__all__ = [
    "Restore",
    "LOSSES",
    "apply_record",
    "StoreRecord",
    "StateStore",
    "field_text",
    "profile_key",
    "segment_key",
    "alias_key",
    "erased_key",
    "ERASED_GUARD_S",
    "check_record",
    "later_ts",
    "row_changes",
    "segments_json",
]


@dataclass(frozen=True, slots=True)
class Restore:
    """Rewrite a user's whole profile hash (and memberships) as it should be.

    Emitted by the store's repair (``flows/store_state.py``) after Redis lost
    data: ``fields`` is the hash's content, ``segments`` included.
    """

    user_id: str
    fields: dict[str, str]


StoreRecord = ProfileRow | SegmentChange | Tombstone | Restore | IdentityMerge
"""What a store applies."""


class Losses:
    """When (epoch seconds), in this process, a store last found that Redis had lost data.

    Written by the stores (any worker thread), read by the repair step's keys
    when their timers fire: the one piece of state they share, behind a lock.
    ``0.0``: never.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0

    def found(self) -> None:
        with self._lock:
            self._at = time.time()

    def last(self) -> float:
        with self._lock:
            return self._at


LOSSES = Losses()
"""Losses of Redis data found in this process (see :class:`Losses`)."""


@runtime_checkable
class StateStore(Protocol):
    """Where profiles and segment memberships are kept for readers outside the flow."""

    def apply(self, records: Sequence[StoreRecord]) -> None:
        """Apply ``records`` in order; return once all are stored."""
        ...

    def profile(self, user_id: str) -> dict[str, str] | None:
        """Return the user's profile fields as text, or ``None`` if there is none."""
        ...

    def alias(self, anonymous_id: str) -> str | None:
        """Return the customer a linked device belongs to, if any."""
        ...

    def members(self, segment: str) -> set[str]:
        """Return the user ids in ``segment`` (empty if nobody is)."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def field_text(value: Any) -> str:
    """Return a profile field's value as stored in a hash.

    >>> field_text("web"), field_text(3), field_text(0.82), field_text(True)
    ('web', '3', '0.82', 'true')
    >>> field_text(["sku-7", 2]), field_text({"shoes": 0.5})
    ('["sku-7",2]', '{"shoes":0.5}')
    """
    # The exact types first (a profile's values are these; a bool is not an int by type),
    # then their subclasses: the isinstance tests alone took about a third of a call.
    kind = type(value)
    if kind is str:
        return value
    if kind is float or kind is int:
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode("utf-8")


def profile_key(prefix: str, user_id: str) -> str:
    """Return the key of a user's profile hash.

    >>> profile_key("jf:", "u42")
    'jf:profile:u42'
    """
    return f"{prefix}profile:{user_id}"


def segment_key(prefix: str, segment: str) -> str:
    """Return the key of a segment's member set.

    >>> segment_key("jf:", "highly_engaged")
    'jf:segment:highly_engaged'
    """
    return f"{prefix}segment:{segment}"


def alias_key(prefix: str, anonymous_id: str) -> str:
    """Return the key that names the customer a linked device belongs to.

    >>> alias_key("jf:", "a-9f3")
    'jf:alias:a-9f3'
    """
    return f"{prefix}alias:{anonymous_id}"


#: How long (wall-clock seconds) a store remembers that a customer was erased, so that a
#: device's link that reaches it after the erasure (it travels another path through the
#: dataflow, and may arrive a batch later) is not written again.
ERASED_GUARD_S = 86_400


def erased_key(prefix: str, user_id: str) -> str:
    """Return the key that holds when ``user_id`` was erased (its event time, ms).

    The user id is kept only as a digest: the key outlives the erasure by
    :data:`ERASED_GUARD_S`.

    >>> erased_key("jf:", "u42")
    'jf:erased:692a91a028476ee413f93aa416cb2f2a193515d5'
    """
    return f"{prefix}erased:{hashlib.sha1(user_id.encode('utf-8')).hexdigest()}"


def segments_json(segments: Iterable[str]) -> str:
    return orjson.dumps(list(segments)).decode("utf-8")


def row_changes(row: ProfileRow) -> tuple[dict[str, str], list[str]]:
    """Return ``(fields to set, fields to delete)`` for a profile row.

    >>> row = ProfileRow("u1", 1795343460000, {"visits": 3, "channel": None}, ("vip",))
    >>> row_changes(row)
    ({'visits': '3', 'updated_at': '2026-11-22T10:31:00Z', 'segments': '["vip"]'}, ['channel'])
    """
    updates: dict[str, str] = {}
    deletes: list[str] = []
    for name, value in row.fields.items():
        if value is None:
            deletes.append(name)
        else:
            updates[name] = field_text(value)
    updates["updated_at"] = format_ts(row.ts_ms)
    if row.segments is not None:
        updates["segments"] = segments_json(row.segments)
    return updates, deletes



def later_ts(current: str | None, new: str) -> bool:
    """Return whether ``new`` (``format_ts`` text) is after ``current`` (``None``: nothing yet).

    >>> later_ts("2026-11-22T10:31:00Z", "2026-11-22T10:31:00.250Z")
    True
    >>> later_ts("2026-11-22T10:31:00.250Z", "2026-11-22T10:31:00Z")
    False
    """
    if current is None:
        return True

    def norm(text: str) -> str:
        return text[:19] + ".000Z" if len(text) == 20 else text

    return norm(current) < norm(new)


def check_record(record: Any) -> None:
    if not isinstance(record, (ProfileRow, SegmentChange, Tombstone, Restore, IdentityMerge)):
        msg = (
            "store records must be ProfileRow, SegmentChange, Tombstone, Restore or IdentityMerge; "
            f"got {type(record).__name__} instead"
        )
        raise TypeError(msg)



def apply_record(fields: dict[str, str] | None, record: StoreRecord) -> dict[str, str] | None:
    """Return a user's profile hash after ``record`` (``None``: no hash), as Redis would hold it.

    ``fields`` is changed in place. The segment sets follow the hash's
    ``segments`` (see the module docstring), so the hash says it all.

    >>> fields = apply_record(None, ProfileRow("u1", 1795343460000, {"visits": 3}, ("vip",)))
    >>> fields
    {'visits': '3', 'updated_at': '2026-11-22T10:31:00Z', 'segments': '["vip"]'}
    >>> apply_record(fields, Tombstone("u1", 0, None)) is None
    True
    """
    if isinstance(record, Tombstone):
        return None
    if isinstance(record, IdentityMerge):
        # An alias is a key of its own, not part of the customer's hash.
        return fields
    if isinstance(record, Restore):
        return dict(record.fields)
    fields = {} if fields is None else fields
    if isinstance(record, SegmentChange):
        fields["segments"] = segments_json(record.segments)
        return fields
    updates, deletes = row_changes(record)
    if not later_ts(fields.get("updated_at"), updates["updated_at"]):
        del updates["updated_at"]
    fields.update(updates)
    for name in deletes:
        fields.pop(name, None)
    return fields
