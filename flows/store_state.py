"""Repair the profile store from state when Redis lost data.

Redis may come back empty (restarted without persistence), be flushed, or
lose keys. The store notices (a marker key per store, see
:class:`state.redis_store.RedisStore`), but the store sink is stateless: what a
user's hash should hold lives only in the flow. So one keyed step before the
store sink, ``store_state``, keeps per user the content of their hash as the
store records build it (the same rules as :class:`~state.memory_store.InMemoryStore`),
passes every record on unchanged, and checks on a timer, at most once every
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from journeyflow.records import ProfileRow  # noqa: F401  # used by the doctests
from state.store import LOSSES, Restore, StoreRecord, apply_record

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


class StoreStateLogic(StatefulLogic[Any, Any, bytes]):
    """One user's hash as the store should hold it; see the module docstring.

    >>> clock = [100.0]
    >>> lost = [0.0]
    >>> cfg = StoreStateConfig(check_s=10, now=lambda: clock[0], losses=lambda: lost[0])
    >>> logic = cfg.build(None)
    >>> out, _ = logic.on_item(ProfileRow("u1", 1795343460000, {"visits": 3}, ("vip",)))
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

    def on_item(self, value: StoreRecord) -> tuple[Iterable[Any], bool]:
        self.user = value.user_id
        self.fields = apply_record(self.fields, value)
        self.written = self.cfg.now()
        if self.fields is None:
            return [value], StatefulLogic.DISCARD
        return [value], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        now = self.cfg.now()
        self.checked = now
        if self.fields is None or (self.cfg.ttl_s and now >= self.written + self.cfg.ttl_s):
            return [], StatefulLogic.DISCARD
        if self.cfg.losses() > self.synced:
            self.synced = now
            return [Restore(self.user, dict(self.fields))], StatefulLogic.RETAIN
        return [], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.checked + self.cfg.check_s, timezone.utc)

    def snapshot(self) -> bytes:
        return orjson.dumps([self.user, self.fields, self.synced, self.written, self.checked])


def store_state(step_id: str, up: Stream[StoreRecord], cfg: StoreStateConfig) -> Stream[StoreRecord | Restore]:
    """Pass store records through the repair step (keyed by user); add restores after a loss."""
    keyed = op.key_on(f"{step_id}_key", up, lambda record: record.user_id)
    # (user, ProfileRow | SegmentChange | Tombstone)
    kept = op.stateful(step_id, keyed, cfg.build)
    # (user, the same records | Restore)
    return op.map(f"{step_id}_records", kept, lambda kv: kv[1])

