"""The profile store in Redis (:class:`RedisStore`): connecting, retrying a batch through
an outage, noticing lost data. The commands each record sends are in
:mod:`state.redis_commands`; the layout and the order in which records apply are in
:mod:`state.store`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.connections import RedisSettings
from journeyflow.clients import redis_options
from journeyflow.connection_failures import explain_redis_failure
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.metrics import REDIS_WRITE_ERRORS
from journeyflow.outages import Outage, RetryPolicy
from state.redis_commands import Command, RecordCommands
from state.store import LOSSES, StoreRecord, alias_key, check_record, profile_key, segment_key

__all__ = ["RedisStore"]

log = logging.getLogger("journeyflow.redis")

# A store's own marker outlives a stopped worker by a day, then goes.
_MARKER_TTL_S = 86400

# A batch's commands go out in chunks of about this many bytes as they are packed:
# Redis runs one chunk while the next is packed, instead of waiting for the whole
# batch (a batch at 5,000 events/s is about 3,000 records, 1.5 MB of commands).
_CHUNK_BYTES = 64 * 1024

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

    A batch is one round trip on one connection, commands in record order
    (sent in chunks as they are packed, see :meth:`_round_trip`). Readers may see a batch half-applied, never reordered.
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
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self._commands = RecordCommands(key_prefix=key_prefix, ttl_s=ttl_s)
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
            check_record(record)
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
        # The marker is read before the batch's writes, in the same round trip.
        commands: list[Command] = [("EXISTS", self._marker if self._marked else self._shared_marker)]
        commands += self._commands.load
        commands += self._commands.commands(records)
        commands.append(("SET", self._marker, "1", "EX", _MARKER_TTL_S))
        commands.append(("SET", self._shared_marker, "1"))
        replies = self._round_trip(commands)
        if not replies[0]:
            self._lost()
        self._marked = True

    def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` on one connection and return their replies, in order.

        They go out in chunks as they are packed, so Redis runs the first ones
        while the rest are packed (one connection: Redis runs them in order).
        Every reply is read before an error reply is raised, so that the
        connection stays in step; a connection that failed is dropped.
        """
        pool = self._client.connection_pool
        connection = pool.get_connection()
        replies: list[Any] = []
        error: redis.exceptions.ResponseError | None = None
        try:
            chunk: list[bytes] = []
            size = 0
            for command in commands:
                # hiredis's stub types the argument as a one-element tuple; it takes any length.
                packed = hiredis.pack_command(cast(Any, command))
                chunk.append(packed)
                size += len(packed)
                if size >= _CHUNK_BYTES:
                    connection.send_packed_command(chunk)
                    chunk, size = [], 0
            if chunk:
                connection.send_packed_command(chunk)
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as ex:
                    replies.append(ex)
                    error = error or ex
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        if error is not None:
            raise error
        return replies

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

    # The client decodes replies (decode_responses=True): they are str, not the stubs' bytes | str.
    def profile(self, user_id: str) -> dict[str, str] | None:
        fields = cast(dict[str, str], self._client.hgetall(profile_key(self.key_prefix, user_id)))
        return fields or None

    def alias(self, anonymous_id: str) -> str | None:
        return cast(str | None, self._client.get(alias_key(self.key_prefix, anonymous_id)))

    def members(self, segment: str) -> set[str]:
        return cast(set[str], self._client.smembers(segment_key(self.key_prefix, segment)))

    def close(self) -> None:
        self._outage.close()
        self._client.close()
