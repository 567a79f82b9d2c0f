"""Merge a batch's profile rows and segment changes per user before they go to Redis.

The live worker writes about two store records per event (the journey step's
row, the audience step's row or segment change), and when it is busy a batch
holds several events of the same user. Sending each record costs the worker
far more than Redis's work (redis-py packs every command in Python), so
:func:`coalesce` folds each user's rows and segment changes into one
:class:`RowPatch` that leaves Redis exactly as applying them one after the
other would:

- fields: the later record's value wins, a deletion included;
- ``updated_at``: the latest of the rows' times (the store only moves it forward);
- segments: the last list wins; every segment of an earlier list or an
  earlier change's ``exited`` is left unless the last list keeps it (as the
  one-by-one syncs would leave it when it stops being listed);
- the expiry is reset once (it is reset to the same TTL from now either way).

Records of different users touch different hashes and different members of
the segment sets, so a user's later records may move ahead of other users'
records. A user's tombstone or restore is kept in its place: the user's
records after it start a new patch. Identity merges (alias keys) stay as they are.

>>> from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange
>>> rows = [ProfileRow("u1", 2_000, {"visits": 1, "channel": "web"}), ProfileRow("u2", 1_000, {"visits": 5}),
...         SegmentChange("u1", 2_000, ("a",), (), ("a",), "e1", {}),
...         ProfileRow("u1", 1_000, {"visits": 2, "channel": None}, ("b",))]
>>> [p.user_id for p in coalesce(rows)]
['u1', 'u2']
>>> patch = coalesce(rows)[0]
>>> patch.updates, patch.deletes, patch.updated_at, patch.segments, sorted(patch.leave)
({'visits': '2'}, {'channel'}, '1970-01-01T00:00:02Z', '["b"]', ['a'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from journeyflow.events import format_ts
from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange
from state.store import StoreRecord, field_text, segments_json

__all__ = ["RowPatch", "coalesce"]


@dataclass(slots=True)
class RowPatch:
    """One user's rows and segment changes of a batch, merged (see the module docstring).

    ``latest_ms`` is ``None`` when only segment changes were merged (they do not
    move ``updated_at``); ``segments`` is ``""`` when no record set the list.
    """

    user_id: str
    updates: dict[str, str] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    latest_ms: int | None = None
    segments: str = ""
    leave: set[str] = field(default_factory=set)
    listed: Sequence[str] | None = field(default=None, repr=False)
    """The last list set, as given (``segments`` is its JSON)."""

    @property
    def updated_at(self) -> str:
        """The rows' latest time as the hash holds it (``""``: no row)."""
        return "" if self.latest_ms is None else format_ts(self.latest_ms)

    def add_row(self, row: ProfileRow) -> None:
        updates, deletes = self.updates, self.deletes
        for name, value in row.fields.items():
            if value is None:
                updates.pop(name, None)
                deletes.add(name)
            else:
                # The repair step hands rows on with their values as text already (flows/store_state.py).
                updates[name] = value if type(value) is str else field_text(value)
                deletes.discard(name)
        # Formatted once per patch: format_ts keeps time order, and it costs more than the rest.
        if self.latest_ms is None or row.ts_ms > self.latest_ms:
            self.latest_ms = row.ts_ms
        if row.segments is not None:
            self._set_segments(row.segments, ())

    def add_change(self, change: SegmentChange) -> None:
        self._set_segments(change.segments, change.exited)

    def _set_segments(self, segments: Sequence[str], exited: Sequence[str]) -> None:
        if self.listed is not None:
            self.leave.update(self.listed)
        self.leave.update(exited)
        self.listed = segments
        self.segments = segments_json(segments)


def coalesce(records: Sequence[StoreRecord]) -> list[RowPatch | StoreRecord]:
    """Return ``records`` with each user's rows and segment changes merged into a
    :class:`RowPatch` at the place of the first of them (see the module docstring)."""
    out: list[RowPatch | StoreRecord] = []
    open_patches: dict[str, RowPatch] = {}
    for record in records:
        kind = type(record)
        if kind is ProfileRow or kind is SegmentChange:
            user = record.user_id
            patch = open_patches.get(user)
            if patch is None:
                patch = open_patches[user] = RowPatch(user)
                out.append(patch)
            if kind is ProfileRow:
                patch.add_row(record)  # type: ignore[arg-type]
            else:
                patch.add_change(record)  # type: ignore[arg-type]
            continue
        if kind is not IdentityMerge:
            # A tombstone or restore of this user: what follows it starts anew.
            open_patches.pop(record.user_id, None)
        out.append(record)
    return out
