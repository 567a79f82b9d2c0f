"""Repair the profile store from state when Redis lost data.

Redis may come back empty (restarted without persistence), be flushed, or
lose keys. The store notices (a marker key per store, see
:class:`state.redis_store.RedisStore`), but the store sink is stateless: what a
user's hash should hold lives only in the flow. So one keyed step before the
store sink, ``store_state``, keeps per user the content of their hash as the
store records build it (the same rules as :class:`~state.memory_store.InMemoryStore`),
passes every record on (a profile row with its values as the hash's text, which
the store writes unchanged), and checks on a timer, at most once every
``check_s`` per user, whether a loss was found since the user's hash was last
written whole; if so it emits a :class:`~state.store.Restore`, which rewrites
the hash and its segment memberships. Spread over the users' timers, the
repair is rate-limited: about ``users / check_s`` rewrites a second.

State is bounded like the store: a tombstone discards it, and with a profile
TTL a user idle that long is forgotten (the hash expired in Redis too). It is
snapshotted with bytewax recovery, so a restarted worker can repair as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from journeyflow.events import format_ts
from journeyflow.records import ProfileRow, SegmentChange
from state.store import LOSSES, Restore, StoreRecord, apply_record, field_text, later_ts, segments_json

__all__ = ["StoreStateConfig", "StoreStateLogic", "store_state"]


@dataclass(frozen=True)
class StoreStateConfig:
    """:arg check_s: wall-clock seconds between a user's checks for a loss.
    :arg ttl_s: the store's profile TTL (0: none); an idle user is forgotten after it.
    :arg now: the wall clock (epoch seconds), for tests.
    :arg losses: when a loss was last found (epoch seconds), for tests.
    """

    check_s: float
    ttl_s: int = 0
    now: Callable[[], float] = time.time
    losses: Callable[[], float] = LOSSES.last

    def build(self, resume: bytes | None) -> StoreStateLogic:
        if resume is None:
            now = self.now()
            return StoreStateLogic(self, "", None, now, now, now)
        user, fields, synced, written, checked = orjson.loads(resume)
        return StoreStateLogic(self, user, fields, synced, written, checked)


class StoreStateLogic(StatefulBatchLogic[Any, Any, bytes]):
    """One user's hash as the store should hold it; see the module docstring.

    >>> clock = [100.0]
    >>> lost = [0.0]
    >>> cfg = StoreStateConfig(check_s=10, now=lambda: clock[0], losses=lambda: lost[0])
    >>> logic = cfg.build(None)
    >>> out, _ = logic.on_batch([ProfileRow("u1", 1795343460000, {"visits": 3}, ("vip",))])
    >>> logic.on_notify()[0]  # nothing lost: nothing to rewrite
    []
    >>> clock[0], lost[0] = 120.0, 115.0
    >>> [restore] = logic.on_notify()[0]
    >>> restore.fields == {"visits": "3", "updated_at": "2026-11-22T10:31:00Z", "segments": '["vip"]'}
    True
    >>> logic.on_notify()[0]  # rewritten whole after the loss: once is enough
    []
    """

    def __init__(
        self,
        cfg: StoreStateConfig,
        user: str,
        fields: dict[str, str] | None,
        synced: float,
        written: float,
        checked: float,
    ) -> None:
        self.cfg = cfg
        self.user = user
        self.fields = fields
        self.synced = synced  # when the hash was last known whole in Redis
        self.written = written  # when a record last reached the store
        self.checked = checked

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        """Fold a batch of the user's store records into the hash; pass them on, in order.

        A profile row goes on with its values as the hash's text (the text this
        fold formats anyway; the store would format each value again), so the
        store writes exactly what it would have written for the row as it came.
        Every other record goes on as it came.

        The same hash as :func:`~state.store.apply_record` one record after the
        other, with the batch's ``updated_at`` and segment list formatted once
        (a busy worker hands a user several rows per batch, and formatting them
        cost more than the rest of the step): rows only move ``updated_at``
        forward, and the last list set wins.
        """
        now = self.cfg.now()
        fields = self.fields
        latest_ms: int | None = None  # the latest row time not yet in fields
        listed: Sequence[str] | None = None  # the last segment list not yet in fields
        out: list[Any] = []
        for record in values:
            kind = type(record)
            if kind is SegmentChange:
                fields = {} if fields is None else fields
                listed = record.segments
                out.append(record)
                continue
            if kind is ProfileRow and "updated_at" not in record.fields and "segments" not in record.fields:
                fields = {} if fields is None else fields
                # The row goes on with its values as the hash's text, formatted here once:
                # the store writes field_text(value), and field_text of a text is the text.
                texts: dict[str, str | None] = {}
                for name, value in record.fields.items():
                    if value is None:
                        fields.pop(name, None)
                        texts[name] = None
                    else:
                        fields[name] = texts[name] = field_text(value)
                out.append(ProfileRow(record.user_id, record.ts_ms, texts, record.segments, record.final))
                if latest_ms is None or record.ts_ms > latest_ms:
                    latest_ms = record.ts_ms
                if record.segments is not None:
                    listed = record.segments
                continue
            out.append(record)
            # A tombstone, restore, link, or a row naming the formatted fields: in its place.
            fields = _settle(fields, latest_ms, listed)
            latest_ms, listed = None, None
            had = fields is not None
            fields = apply_record(fields, record)
            if had and fields is None:
                # Discarded here, as bytewax would: a later record starts a new user.
                self.synced = self.checked = now
        fields = _settle(fields, latest_ms, listed)
        if values:
            self.user = values[-1].user_id
            self.written = now
        self.fields = fields
        return out, fields is None

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        now = self.cfg.now()
        self.checked = now
        if self.fields is None or (self.cfg.ttl_s and now >= self.written + self.cfg.ttl_s):
            return [], StatefulBatchLogic.DISCARD
        if self.cfg.losses() > self.synced:
            self.synced = now
            return [Restore(self.user, dict(self.fields))], StatefulBatchLogic.RETAIN
        return [], StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.checked + self.cfg.check_s, timezone.utc)

    def snapshot(self) -> bytes:
        return orjson.dumps([self.user, self.fields, self.synced, self.written, self.checked])


def _settle(fields: dict[str, str] | None, latest_ms: int | None, listed: Sequence[str] | None) -> dict[str, str] | None:
    """Return ``fields`` with a batch's latest row time and last segment list set (``None``: none)."""
    if fields is None:
        return None
    if latest_ms is not None:
        updated_at = format_ts(latest_ms)
        if later_ts(fields.get("updated_at"), updated_at):
            fields["updated_at"] = updated_at
    if listed is not None:
        fields["segments"] = segments_json(listed)
    return fields


@operator
def _stateful_batch(
    step_id: str, up: KeyedStream[StoreRecord], builder: Callable[[bytes | None], StoreStateLogic]
) -> KeyedStream[StoreRecord | Restore]:
    # Nested like op.stateful ("<step>.stateful_batch"), the step this was before:
    # recovery keeps state by step path, so snapshots taken by either resume.
    return op.stateful_batch("stateful_batch", up, builder)


def store_state(step_id: str, up: Stream[StoreRecord], cfg: StoreStateConfig) -> Stream[StoreRecord | Restore]:
    """Pass store records through the repair step (keyed by user); add restores after a loss."""
    keyed = op.key_on(f"{step_id}_key", up, lambda record: record.user_id)
    # (user, ProfileRow | SegmentChange | Tombstone)
    kept = _stateful_batch(step_id, keyed, cfg.build)
    # (user, the same records | Restore)
    return op.map(f"{step_id}_records", kept, lambda kv: kv[1])

