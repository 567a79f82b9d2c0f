"""The command line's own arguments, checked before any work: one line and exit 2 if wrong.

The settings check their values (``config/``); these are the arguments that are not
settings, where a slip would otherwise surface late (after a whole replay) or never (a
cluster that waits for a process that cannot exist). :func:`path_error` words the one
line of any other ``OSError`` on a path the user gave.
"""

from __future__ import annotations

from pathlib import Path

from journeyflow.errors import ConfigError

__all__ = ["check_cluster", "check_out_dir", "check_replay", "file_in_the_way", "path_error"]


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
    if truth and Path(truth).is_dir():
        msg = f"--truth {truth} is a folder; give the truth file's name"
        raise ConfigError(msg)
    if truth and not Path(truth).is_file():
        # Checked now: the replay reads it only at its end.
        msg = f"truth file not found: {truth}"
        raise ConfigError(msg)


def file_in_the_way(path: Path) -> Path | None:
    """Return ``path`` or the first folder above it that exists and is not a folder, if any.

    >>> file_in_the_way(Path("/dev/null/out")), file_in_the_way(Path("/tmp/no-such-folder/out"))
    (PosixPath('/dev/null'), None)
    """
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            return part
    return None


def check_out_dir(flag: str, path: Path) -> None:
    """Refuse an output folder that cannot be one: a file is there, or in its path.

    >>> check_out_dir("--out", Path("/dev/null"))
    Traceback (most recent call last):
    ...
    journeyflow.errors.ConfigError: --out /dev/null must be a folder (created if missing); got a file instead
    """
    blocker = file_in_the_way(path)
    if blocker == path:
        msg = f"{flag} {path} must be a folder (created if missing); got a file instead"
        raise ConfigError(msg)
    if blocker is not None:
        msg = f"{flag} {path} must be a folder (created if missing); got a file at {blocker} instead"
        raise ConfigError(msg)


def path_error(ex: OSError) -> str:
    """Return the one line that says what is wrong with the path of ``ex``.

    An error raised with a message of its own (``input file not found: ...``)
    keeps it; one from the system names its path and, where a file stands
    where a folder is needed or the other way round, says so.

    >>> path_error(FileExistsError(17, "File exists", "/dev/null"))
    '/dev/null: File exists (a file is there, where a folder is needed)'
    >>> path_error(NotADirectoryError(20, "Not a directory", "/dev/null/out/summary.json"))
    '/dev/null/out/summary.json: Not a directory (a file is at /dev/null, where a folder is needed)'
    >>> path_error(IsADirectoryError(21, "Is a directory", "/tmp"))
    '/tmp: Is a directory (a folder is there, where a file is needed)'
    """
    if ex.filename is None:
        return str(ex)
    path = str(ex.filename) + (f" -> {ex.filename2}" if ex.filename2 is not None else "")
    line = f"{path}: {ex.strerror}"
    if isinstance(ex, (FileExistsError, NotADirectoryError)) and isinstance(ex.filename, str):
        blocker = file_in_the_way(Path(ex.filename))
        if blocker == Path(ex.filename):
            return f"{line} (a file is there, where a folder is needed)"
        if blocker is not None:
            return f"{line} (a file is at {blocker}, where a folder is needed)"
    if isinstance(ex, IsADirectoryError):
        return f"{line} (a folder is there, where a file is needed)"
    return line


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
