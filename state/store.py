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

Records are applied in order:

- :class:`~journeyflow.records.ProfileRow` sets its fields (a ``None`` value
  deletes that field), ``segments`` when the row has them, and ``updated_at``
  unless the hash already holds a later one: rows reach the store along two
  paths of the flow (the per-user step, and the step after the models), so an
  older row can arrive after a newer one, and ``updated_at`` must not go back.
- :class:`~journeyflow.records.SegmentChange` adds the user to the segments
  entered, removes them from those exited, and sets the hash's ``segments``.
- :class:`~journeyflow.records.Tombstone` deletes the hash and removes the
  user from each of its ``segments``.

Every command is idempotent given the batch (set a field, add or remove a
member, delete a key), so a batch that failed half-way is simply applied
again from its start, in order, and ends in the same state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import RedisSettings
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.events import format_ts
from journeyflow.metrics import REDIS_WRITE_ERRORS
from journeyflow.records import ProfileRow, SegmentChange, Tombstone

__all__ = [
    "StoreRecord",
    "StateStore",
    "RedisStore",
    "InMemoryStore",
    "field_text",
    "profile_key",
    "segment_key",
]

log = logging.getLogger("journeyflow.redis")

StoreRecord = ProfileRow | SegmentChange | Tombstone
"""What a store applies."""

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
    if not isinstance(record, (ProfileRow, SegmentChange, Tombstone)):
        msg = (
            "store records must be ProfileRow, SegmentChange or Tombstone; "
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
    whole batch after a back-off that doubles from ``backoff_s`` up to
    ``max_backoff_s``; each failed attempt counts in
    ``journeyflow_redis_write_errors_total`` and logs a warning. After
    ``max_attempts`` attempts the batch raises ``ConnectionFailure``: it is
    never dropped silently. Other Redis errors raise at once.

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
        max_attempts: int = 10,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ttl_s < 0:
            msg = f"redis profile_ttl_s must be >= 0; got {ttl_s!r} instead"
            raise ConfigError(msg)
        if max_attempts < 1:
            msg = f"redis max_attempts must be >= 1; got {max_attempts!r} instead"
            raise ConfigError(msg)
        self._client = client
        self._keep_latest_updated_at = client.register_script(_KEEP_LATEST_UPDATED_AT)
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep

    @classmethod
    def connect(
        cls,
        url: str,
        key_prefix: str = "jf:",
        ttl_s: int = 0,
        connect_timeout_s: float = 5.0,
        **options: Any,
    ) -> RedisStore:
        """Return a store on ``url`` (``redis://host:port/db``) once Redis answers PING.

        Raises ``ConnectionFailure`` if it does not answer within
        ``connect_timeout_s``. ``options`` go to :class:`RedisStore`
        (``max_attempts``, ``backoff_s``...).
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
            msg = f"redis {_redacted(url)} unreachable after {waited:.1f} s: {ex}"
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
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._write(records)
                if attempt > 1:
                    log.warning(
                        "redis write succeeded after retrying",
                        extra={"attempt": attempt, "records": len(records)},
                    )
                return
            except _TRANSIENT as ex:
                REDIS_WRITE_ERRORS.inc()
                if attempt == self.max_attempts:
                    msg = (
                        f"redis write of {len(records)} records failed after "
                        f"{attempt} attempts: {ex}"
                    )
                    raise ConnectionFailure(msg) from ex
                log.warning(
                    "redis write failed; retrying the batch",
                    extra={"attempt": attempt, "records": len(records), "retry_in_s": delay,
                           "error": repr(ex)},
                )
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    def _write(self, records: Sequence[StoreRecord]) -> None:
        prefix = self.key_prefix
        ttl = self.ttl_s
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            key = profile_key(prefix, record.user_id)
            if isinstance(record, ProfileRow):
                updates, deletes = _row_changes(record)
                updated_at = updates.pop("updated_at")
                if updates:
                    pipe.hset(key, mapping=updates)
                if deletes:
                    pipe.hdel(key, *deletes)
                self._keep_latest_updated_at(keys=[key], args=[updated_at], client=pipe)
            elif isinstance(record, SegmentChange):
                for segment in record.entered:
                    pipe.sadd(segment_key(prefix, segment), record.user_id)
                for segment in record.exited:
                    pipe.srem(segment_key(prefix, segment), record.user_id)
                pipe.hset(key, "segments", _segments_text(record.segments))
            else:
                pipe.delete(key)
                for segment in record.segments:
                    pipe.srem(segment_key(prefix, segment), record.user_id)
                continue
            if ttl:
                pipe.expire(key, ttl)
        pipe.execute()

    def profile(self, user_id: str) -> dict[str, str] | None:
        fields = self._client.hgetall(profile_key(self.key_prefix, user_id))
        return fields or None

    def members(self, segment: str) -> set[str]:
        return set(self._client.smembers(segment_key(self.key_prefix, segment)))

    def close(self) -> None:
        self._client.close()


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
        self._lock = threading.Lock()

    def apply(self, records: Sequence[StoreRecord]) -> None:
        for record in records:
            _check_record(record)
        with self._lock:
            for record in records:
                self._apply_one(record)

    def _apply_one(self, record: StoreRecord) -> None:
        user = record.user_id
        if isinstance(record, ProfileRow):
            updates, deletes = _row_changes(record)
            fields = self._profiles.setdefault(user, {})
            if not _later_ts(fields.get("updated_at"), updates["updated_at"]):
                del updates["updated_at"]
            fields.update(updates)
            for name in deletes:
                fields.pop(name, None)
        elif isinstance(record, SegmentChange):
            for segment in record.entered:
                self._segments.setdefault(segment, set()).add(user)
            for segment in record.exited:
                self._remove_member(segment, user)
            self._profiles.setdefault(user, {})["segments"] = _segments_text(record.segments)
        else:
            self._profiles.pop(user, None)
            for segment in record.segments:
                self._remove_member(segment, user)

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

    def members(self, segment: str) -> set[str]:
        with self._lock:
            return set(self._segments.get(segment, ()))

    def segments(self) -> dict[str, set[str]]:
        """Return every non-empty segment with its members (a copy)."""
        with self._lock:
            return {name: set(users) for name, users in self._segments.items()}

    def close(self) -> None:
        return None
