"""Wait out a lost Redis or Kafka broker: back-off, readiness, one log line per change.

The live worker's sinks write inside bytewax's worker loop, so a sink that
waits for its service also stops the worker from reading more input: that
is the back-pressure, with nothing buffered beyond the batch in hand. An
:class:`Outage` is the waiting of one client (a store, a producer, a
consumer): :meth:`Outage.failed` logs the first failure, marks the service
down (``journeyflow_ready`` 0, ``journeyflow_service_down{service}`` 1),
sleeps a back-off that doubles up to a cap, and raises
:class:`~journeyflow.errors.ConnectionFailure` once the optional give-up
deadline has passed; :meth:`Outage.succeeded` logs how long it lasted and
marks the service up again.

This module knows nothing of how clients are built (addresses, TLS, SASL):
callers catch their client's transient errors and hand them over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from config.connections import OutageSettings
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.metrics import service_down, service_up

__all__ = ["RetryPolicy", "Outage"]

# While an outage lasts, a reminder is logged this often.
_REMIND_EVERY_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between retries, and when to stop.

    :arg backoff_s: first wait; each further failure doubles it...
    :arg max_backoff_s: ...up to this.
    :arg give_up_after_s: raise once an outage has lasted this long; 0: never.
    """

    backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    give_up_after_s: float = 0.0

    def __post_init__(self) -> None:
        if self.backoff_s <= 0 or self.max_backoff_s < self.backoff_s:
            msg = (
                f"retry back-off must be 0 < backoff_s <= max_backoff_s; "
                f"got {self.backoff_s} and {self.max_backoff_s} instead"
            )
            raise ConfigError(msg)
        if self.give_up_after_s < 0:
            msg = f"retry give_up_after_s must be >= 0; got {self.give_up_after_s} instead"
            raise ConfigError(msg)

    @classmethod
    def from_settings(cls, settings: OutageSettings) -> RetryPolicy:
        """Return the policy of the ``[outages]`` settings."""
        return cls(settings.backoff_s, settings.max_backoff_s, settings.give_up_after_s)


class Outage:
    """The outage of one client of ``service`` (``"redis"``, ``"kafka"``), if any.

    Not thread-safe: one per client, used by the thread that uses the client.

    >>> waits = []
    >>> outage = Outage("redis", "profile store", RetryPolicy(0.1, 0.3), sleep=waits.append)
    >>> for _ in range(4):
    ...     outage.failed(OSError("connection refused"))
    >>> waits, outage.down
    ([0.1, 0.2, 0.3, 0.3], True)
    >>> outage.succeeded()
    >>> outage.down
    False
    """

    def __init__(
        self,
        service: str,
        what: str,
        policy: RetryPolicy,
        *,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.what = what
        self.policy = policy
        self._log = logger or logging.getLogger(f"journeyflow.{service}")
        self._sleep = sleep
        self._clock = clock
        self._since: float | None = None
        self._reminded = 0.0
        self._delay = policy.backoff_s
        self._attempts = 0

    @property
    def down(self) -> bool:
        """Return whether an outage is under way."""
        return self._since is not None

    def failed(self, error: BaseException, *, wait: bool = True, **context: object) -> None:
        """Record a failed attempt, then wait the back-off (unless not ``wait``:
        the caller is blocked on its client already).

        Raises ``ConnectionFailure`` instead once ``give_up_after_s`` passed.
        """
        now = self._clock()
        self._attempts += 1
        if self._since is None:
            self._since = self._reminded = now
            service_down(self.service)
            self._log.warning(
                f"{self.service} unavailable; input paused, retrying with back-off",
                extra={"service": self.service, "client": self.what, "error": repr(error), **context},
            )
        lasted = now - self._since
        give_up = self.policy.give_up_after_s
        if give_up and lasted >= give_up:
            msg = (
                f"{self.service} ({self.what}) unavailable for {lasted:.0f} s, beyond "
                f"outages.give_up_after_s = {give_up:g}: {error}"
            )
            raise ConnectionFailure(msg) from error
        if now - self._reminded >= _REMIND_EVERY_S:
            self._reminded = now
            self._log.warning(
                f"{self.service} still unavailable; input paused",
                extra={"service": self.service, "client": self.what, "down_s": round(lasted, 1),
                       "attempts": self._attempts, "error": repr(error), **context},
            )
        if not wait:
            return
        delay = self._delay
        if give_up:
            delay = max(0.0, min(delay, give_up - lasted))
        self._sleep(delay)
        self._delay = min(self._delay * 2, self.policy.max_backoff_s)

    def succeeded(self) -> None:
        """Record a successful attempt: ends the outage, if there was one."""
        if self._since is None:
            return
        lasted = self._clock() - self._since
        self._log.warning(
            f"{self.service} available again; input resumed",
            extra={"service": self.service, "client": self.what, "down_s": round(lasted, 1),
                   "attempts": self._attempts},
        )
        self._since = None
        self._attempts = 0
        self._delay = self.policy.backoff_s
        service_up(self.service)

    def close(self) -> None:
        """Forget an outage under way (the client is closed): readiness no longer waits for it."""
        if self._since is not None:
            self._since = None
            service_up(self.service)
