"""The profile store: what downstream services read about a user, live.

:class:`StateStore` is the interface; :class:`RedisStore` writes Redis,
:class:`InMemoryStore` keeps dicts (tests, and replays that do not write
Redis). Both apply the same records the same way.

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
  the aliases of the user's devices).
- :class:`~journeyflow.records.IdentityMerge` points the device's alias at
  the customer (the device's own hash goes with the tombstone that the merge
  sends through the step after the models).

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

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.connections import RedisSettings
from journeyflow.clients import explain_redis_failure, redis_options
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.events import format_ts
from journeyflow.metrics import REDIS_WRITE_ERRORS
from journeyflow.outages import Outage, RetryPolicy
from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone

__all__ = [
    "Restore",
    "LOSSES",
    "apply_record",
    "StoreRecord",
    "StateStore",
    "RedisStore",
    "InMemoryStore",
    "field_text",
    "profile_key",
    "segment_key",
    "alias_key",
]

log = logging.getLogger("journeyflow.redis")

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


class _Losses:
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


LOSSES = _Losses()
"""Losses of Redis data found in this process (see :class:`_Losses`)."""

# A store's own marker outlives a stopped worker by a day, then goes.
_MARKER_TTL_S = 86400

# Errors after which the same batch may succeed: the server restarted, is
# still loading its data, or the network dropped. Anything else (WRONGTYPE,
# a bad command) would fail again and is raised at once.
_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)


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


def _segments_text(segments: Iterable[str]) -> str:
    return orjson.dumps(list(segments)).decode("utf-8")


def _row_changes(row: ProfileRow) -> tuple[dict[str, str], list[str]]:
    """Return ``(fields to set, fields to delete)`` for a profile row.

    >>> row = ProfileRow("u1", 1795343460000, {"visits": 3, "channel": None}, ("vip",))
    >>> _row_changes(row)
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
        updates["segments"] = _segments_text(row.segments)
    return updates, deletes


# Sets updated_at (ARGV[1]) unless the hash holds a later one. Times are
# format_ts output: 20 characters without milliseconds, 24 with; padding the
# former to ".000Z" makes them compare as text in time order.
_KEEP_LATEST_UPDATED_AT = """
local function norm(s)
  if string.len(s) == 20 then return string.sub(s, 1, 19) .. '.000Z' end
  return s
end
local current = redis.call('HGET', KEYS[1], 'updated_at')
if (not current) or norm(current) < norm(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
end
return 0
"""


# Sets a user's segment list and memberships. KEYS[1]: the profile hash;
# ARGV: the user id, the segment keys' prefix ("jf:segment:"), the new list as
# JSON ("" deletes the hash instead), and segments to leave besides the old
# list (JSON). Touches segment keys it is not given in KEYS: standalone Redis.
_SYNC_SEGMENTS = """
local user, prefix = ARGV[1], ARGV[2]
local keep = {}
if ARGV[3] ~= '' then
  for _, s in ipairs(cjson.decode(ARGV[3])) do keep[s] = true end
end
local leave = cjson.decode(ARGV[4])
local old = redis.call('HGET', KEYS[1], 'segments')
if old then
  for _, s in ipairs(cjson.decode(old)) do leave[#leave + 1] = s end
end
for _, s in ipairs(leave) do
  if not keep[s] then redis.call('SREM', prefix .. s, user) end
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
for s, _ in pairs(keep) do redis.call('SADD', prefix .. s, user) end
redis.call('HSET', KEYS[1], 'segments', ARGV[3])
return 0
"""


def _later_ts(current: str | None, new: str) -> bool:
    """Return whether ``new`` (``format_ts`` text) is after ``current`` (``None``: nothing yet).

    >>> _later_ts("2026-11-22T10:31:00Z", "2026-11-22T10:31:00.250Z")
    True
    >>> _later_ts("2026-11-22T10:31:00.250Z", "2026-11-22T10:31:00Z")
    False
    """
    if current is None:
        return True

    def norm(text: str) -> str:
        return text[:19] + ".000Z" if len(text) == 20 else text

    return norm(current) < norm(new)


def _check_record(record: Any) -> None:
    if not isinstance(record, (ProfileRow, SegmentChange, Tombstone, Restore, IdentityMerge)):
        msg = (
            "store records must be ProfileRow, SegmentChange, Tombstone, Restore or IdentityMerge; "
            f"got {type(record).__name__} instead"
        )
        raise TypeError(msg)


def _redacted(url: str) -> str:
    """Return ``url`` without its password, for messages and logs.

    >>> _redacted("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStore:
    """A :class:`StateStore` in Redis; see the module docstring for the layout.

    A batch is one pipeline (``transaction=False``): one round trip, commands
    in record order. Readers may see a batch half-applied, never reordered.
    A transient failure (Redis restarting, a dropped connection) retries the
    whole batch for as long as the outage lasts, after a back-off that
    doubles up to a cap (``policy``, see :mod:`journeyflow.outages`): the
    worker waits, its input paused, ``journeyflow_ready`` is 0 and a warning
    says so; each failed attempt counts in
    ``journeyflow_redis_write_errors_total``. Only past the policy's
    give-up deadline (default: never) does the batch raise
    ``ConnectionFailure``; it is never dropped silently. Other Redis errors
    raise at once.

    With ``ttl_s`` > 0 every write to a profile hash resets its expiry, so
    idle profiles vanish. Segment sets do not expire: a user whose profile
    expired stays a member until a change or a tombstone removes them.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str = "jf:",
        ttl_s: int = 0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ttl_s < 0:
            msg = f"redis profile_ttl_s must be >= 0; got {ttl_s!r} instead"
            raise ConfigError(msg)
        self._client = client
        self._keep_latest_updated_at = client.register_script(_KEEP_LATEST_UPDATED_AT)
        self._sync_segments = client.register_script(_SYNC_SEGMENTS)
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self.policy = policy or RetryPolicy()
        self._outage = Outage("redis", "profile store", self.policy, logger=log, sleep=sleep)
        # Loss detection: every store keeps its own marker key (so that each
        # process notices, not only the first to write after a loss), and all
        # share one that says journeyflow wrote this database before.
        self._marker = f"{key_prefix}marker:{uuid.uuid4().hex}"
        self._shared_marker = f"{key_prefix}marker"
        self._marked = False

    @classmethod
    def connect(
        cls,
        url: str,
        key_prefix: str = "jf:",
        ttl_s: int = 0,
        connect_timeout_s: float = 5.0,
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RedisStore:
        """Return a store on ``url`` (``redis://host:port/db``) once Redis answers PING.

        Raises ``ConnectionFailure`` if it does not answer within
        ``connect_timeout_s``. ``options`` go to :class:`RedisStore`
        (``policy``, ``sleep``).
        """
        if not url:
            msg = "redis url must be redis://host:port/db; got an empty string instead"
            raise ConfigError(msg)
        try:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=max(connect_timeout_s, 5.0),
                # Retries are the store's job (whole batches, counted, logged):
                # the client's own would multiply the start-up wait.
                retry=Retry(NoBackoff(), 0),
                # ACL user, TLS files (journeyflow/clients.py: redis_options).
                **(client_options or {}),
            )
        except ValueError as ex:
            msg = f"redis url must be redis://host:port/db; got {_redacted(url)!r} instead ({ex})"
            raise ConfigError(msg) from ex
        started = time.monotonic()
        try:
            client.ping()
        except redis.exceptions.RedisError as ex:
            client.close()
            waited = time.monotonic() - started
            msg = explain_redis_failure(url, ex, waited, client_options or {})
            raise ConnectionFailure(msg) from ex
        return cls(client, key_prefix=key_prefix, ttl_s=ttl_s, **options)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisStore:
        """Return a store connected as the ``[redis]`` settings say (see :meth:`connect`).

        An empty ``url`` means "no Redis": raises ``ConfigError``.
        """
        if not settings.url:
            msg = "redis.url must be redis://host:port/db to write profiles; got an empty string"
            raise ConfigError(msg)
        return cls.connect(
            settings.url,
            key_prefix=settings.key_prefix,
            ttl_s=settings.profile_ttl_s,
            connect_timeout_s=settings.connect_timeout_s,
            client_options=redis_options(settings),
            **options,
        )

    @property
    def client(self) -> redis.Redis:
        """Return the Redis client (for reads beyond the protocol)."""
        return self._client

    def apply(self, records: Sequence[StoreRecord]) -> None:
        if not records:
            return
        for record in records:
            _check_record(record)
        while True:
            try:
                self._write(records)
            except _TRANSIENT as ex:
                REDIS_WRITE_ERRORS.inc()
                # Sleeps, or raises ConnectionFailure past the give-up deadline.
                self._outage.failed(ex, records=len(records))
                continue
            self._outage.succeeded()
            return

    def _write(self, records: Sequence[StoreRecord]) -> None:
        prefix = self.key_prefix
        sets = segment_key(prefix, "")
        ttl = self.ttl_s
        pipe = self._client.pipeline(transaction=False)
        # The marker is read before the batch's writes, in the same round trip.
        pipe.exists(self._marker if self._marked else self._shared_marker)
        for record in records:
            user = record.user_id
            if isinstance(record, IdentityMerge):
                pipe.set(alias_key(prefix, record.anonymous_id), user, ex=ttl or None)
                continue
            key = profile_key(prefix, user)
            if isinstance(record, ProfileRow):
                updates, deletes = _row_changes(record)
                updated_at = updates.pop("updated_at")
                segments = updates.pop("segments", None)
                if updates:
                    pipe.hset(key, mapping=updates)
                if deletes:
                    pipe.hdel(key, *deletes)
                if segments is not None:
                    self._sync_segments(keys=[key], args=[user, sets, segments, "[]"], client=pipe)
                self._keep_latest_updated_at(keys=[key], args=[updated_at], client=pipe)
            elif isinstance(record, SegmentChange):
                new = _segments_text(record.segments)
                self._sync_segments(keys=[key], args=[user, sets, new, _segments_text(record.exited)], client=pipe)
            elif isinstance(record, Restore):
                fields = dict(record.fields)
                segments_text = fields.pop("segments", "[]")
                pipe.delete(key)
                if fields:
                    pipe.hset(key, mapping=fields)
                self._sync_segments(keys=[key], args=[user, sets, segments_text, "[]"], client=pipe)
            else:
                self._sync_segments(keys=[key], args=[user, sets, "", _segments_text(record.segments)], client=pipe)
                if record.aliases:
                    pipe.delete(*(alias_key(prefix, device) for device in record.aliases))
                continue
            if ttl:
                pipe.expire(key, ttl)
        pipe.set(self._marker, "1", ex=_MARKER_TTL_S)
        pipe.set(self._shared_marker, "1")
        results = pipe.execute()
        if not results[0]:
            self._lost()
        self._marked = True

    def _lost(self) -> None:
        # Before this store's first batch only the shared marker is asked:
        # missing, the database is new or was emptied while no worker ran.
        # Afterwards its own: missing, Redis lost what it wrote (restarted
        # empty, flushed). Either way the repair step rewrites what state holds.
        LOSSES.found()
        if self._marked:
            log.warning("redis has lost journeyflow's data (restarted empty or flushed); repairing the store from state")
        else:
            log.info("redis holds no journeyflow data yet (new, or emptied); writing it from state")

    def profile(self, user_id: str) -> dict[str, str] | None:
        fields = self._client.hgetall(profile_key(self.key_prefix, user_id))
        return fields or None

    def alias(self, anonymous_id: str) -> str | None:
        return self._client.get(alias_key(self.key_prefix, anonymous_id))  # type: ignore[no-any-return]

    def members(self, segment: str) -> set[str]:
        return set(self._client.smembers(segment_key(self.key_prefix, segment)))

    def close(self) -> None:
        self._outage.close()
        self._client.close()


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
        fields["segments"] = _segments_text(record.segments)
        return fields
    updates, deletes = _row_changes(record)
    if not _later_ts(fields.get("updated_at"), updates["updated_at"]):
        del updates["updated_at"]
    fields.update(updates)
    for name in deletes:
        fields.pop(name, None)
    return fields


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
        self._lock = threading.Lock()

    def apply(self, records: Sequence[StoreRecord]) -> None:
        for record in records:
            _check_record(record)
        with self._lock:
            for record in records:
                self._apply_one(record)

    def _apply_one(self, record: StoreRecord) -> None:
        user = record.user_id
        if isinstance(record, IdentityMerge):
            self._aliases[record.anonymous_id] = user
        elif isinstance(record, ProfileRow):
            updates, deletes = _row_changes(record)
            fields = self._profiles.setdefault(user, {})
            if not _later_ts(fields.get("updated_at"), updates["updated_at"]):
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

    def _sync(self, user: str, segments: Iterable[str] | None, leave: Iterable[str]) -> None:
        # As _SYNC_SEGMENTS does in Redis: None deletes the profile.
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
        self._profiles.setdefault(user, {})["segments"] = _segments_text(segments)

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
