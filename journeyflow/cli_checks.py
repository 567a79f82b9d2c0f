"""The command line's own arguments, checked before any work: one line and exit 2 if wrong.

The settings check their values (``config/``); these are the arguments that are not
settings, where a slip would otherwise surface late (after a whole replay) or never (a
cluster that waits for a process that cannot exist).
"""

from __future__ import annotations

from pathlib import Path

from journeyflow.errors import ConfigError

__all__ = ["check_cluster", "check_replay"]


def check_replay(processes: int, truth: str | None) -> None:
    """Refuse ``replay --processes`` below 1 and a ``--truth`` file that is not there.

    >>> check_replay(0, None)
    Traceback (most recent call last):
    ...
    journeyflow.errors.ConfigError: --processes must be >= 1; got 0 instead
    """
    if processes < 1:
        msg = f"--processes must be >= 1; got {processes} instead"
        raise ConfigError(msg)
    if truth and not Path(truth).is_file():
        # Checked now: the replay reads it only at its end.
        msg = f"truth file not found: {truth}"
        raise ConfigError(msg)


def check_cluster(process_id: int, addresses: list[str]) -> None:
    """Refuse a cluster no process could join: bytewax then waits for ever, deaf to SIGTERM.

    >>> check_cluster(1, ["h:2101", "h:2102"])
    >>> check_cluster(2, ["h:2101", "h:2102"])
    Traceback (most recent call last):
    ...
    journeyflow.errors.ConfigError: --process-id must be 0 .. 1 (one per address); got 2 instead
    """
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            msg = f"--addresses must be host:port;host:port...; got {address!r} instead"
            raise ConfigError(msg)
    if not 0 <= process_id < len(addresses):
        msg = f"--process-id must be 0 .. {len(addresses) - 1} (one per address); got {process_id} instead"
        raise ConfigError(msg)
