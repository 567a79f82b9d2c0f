"""The live worker's recovery directory: created on first start, checked on every start.

A corrupt file, one of another flow or another partition count is one line at start-up
rather than a crash inside bytewax. Recovery stores state per ``<flow id>.<step id>``,
so the flow's id (:data:`FLOW_ID`) must never change.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir

from config.settings import Settings
from journeyflow.errors import ConfigError

__all__ = ["FLOW_ID", "check_recovery_dir", "compact_recovery_dir", "prepare_recovery"]

# The live flow's id: its recovery files hold state under "<FLOW_ID>.<step>".
FLOW_ID = "journeyflow"

log = logging.getLogger("journeyflow.live")


def prepare_recovery(settings: Settings) -> RecoveryConfig | None:
    """Create and initialise the recovery directory on first start; return its config.

    Existing files are checked first, so that a corrupt file, or one of
    another flow or another partition count, is one line at start-up
    rather than a crash inside bytewax.
    """
    directory = settings.recovery.dir
    if not directory:
        return None
    path = Path(directory)
    if not path.exists() or not any(path.glob("*.sqlite3")):
        try:
            path.mkdir(parents=True, exist_ok=True)
            init_db_dir(path, settings.recovery.partitions)
        except OSError as ex:
            msg = f"recovery.dir {directory!r} cannot be created: {ex}"
            raise ConfigError(msg) from ex
        log.info("initialised recovery directory", extra={"dir": directory, "partitions": settings.recovery.partitions})
    else:
        # Processes of a cluster may share the directory: one may still be
        # creating the files another checks, so an unfinished one is given time.
        for attempt in range(20):
            try:
                check_recovery_dir(path)
                break
            except _Unfinished:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        compact_recovery_dir(path)
    return RecoveryConfig(str(path), timedelta(seconds=settings.recovery.backup_s))


_RECOVERY_TABLES = {"parts", "exs", "fronts", "commits", "snaps"}


class _Unfinished(ConfigError):
    """A recovery file without bytewax's tables (yet)."""


def check_recovery_dir(path: Path) -> None:
    """Raise ``ConfigError`` unless ``path`` holds a whole set of this flow's recovery files.

    Each ``*.sqlite3`` file must be a bytewax recovery partition (its tables),
    all of the same partition count with no index missing twice, and hold
    snapshots of this flow's steps only (``journeyflow.*``).
    """
    counts: set[int] = set()
    indexes: list[int] = []
    for file in sorted(path.glob("*.sqlite3")):
        label = str(file)
        try:
            db = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error as ex:
            msg = f"recovery file {label!r} cannot be opened: {ex}"
            raise ConfigError(msg) from ex
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not _RECOVERY_TABLES <= tables:
                msg = (
                    f"recovery file {label!r} must be a bytewax recovery partition; "
                    f"got tables {sorted(tables)} instead"
                )
                raise _Unfinished(msg) if not tables else ConfigError(msg)
            for index, count in db.execute("SELECT part_index, part_count FROM parts"):
                indexes.append(index)
                counts.add(count)
            foreign = db.execute(
                "SELECT step_id FROM snaps WHERE step_id NOT LIKE ? LIMIT 1", (f"{FLOW_ID}.%",)
            ).fetchone()
        except sqlite3.DatabaseError as ex:
            msg = f"recovery file {label!r} is corrupt: {ex}"
            raise ConfigError(msg) from ex
        finally:
            db.close()
        if foreign is not None:
            msg = (
                f"recovery file {label!r} must hold the state of flow {FLOW_ID!r}; "
                f"got a snapshot of step {foreign[0]!r} instead"
            )
            raise ConfigError(msg)
    if len(counts) > 1 or len(indexes) != len(set(indexes)):
        msg = f"recovery.dir {str(path)!r} must hold one set of partitions; got counts {sorted(counts)} and indexes {sorted(indexes)}"
        raise ConfigError(msg)


# The rows of released keys that no resume can read differently without them: a row
# without state (the key was discarded at that epoch) with no older row of its key that
# holds state. A resume loads each key's latest row before the resume epoch: where that
# was such a row, the key now has no row up to that epoch (absent, as the row said);
# a later row is loaded as before.
_RELEASED_ROWS = """
DELETE FROM snaps
WHERE ser_change IS NULL
AND NOT EXISTS (
    SELECT 1 FROM snaps AS older
    WHERE older.step_id = snaps.step_id
    AND older.state_key = snaps.state_key
    AND older.snap_epoch < snaps.snap_epoch
    AND older.ser_change IS NOT NULL
)
"""


def compact_recovery_dir(path: Path) -> int:
    """Delete the rows of released keys from the recovery files; return how many went.

    bytewax 0.21.1 never deletes a key's latest row, even when it only says the key
    was discarded (a tombstone, a device linked at login, ``[state] idle_release_s``),
    and each epoch's commit scans every key's rows: without this, that scan grows with
    every user and device ever seen. Run before bytewax opens the files (start-up);
    see :data:`_RELEASED_ROWS` for why no resume changes. A file another process holds
    locked is left for its next start.
    """
    deleted = 0
    for file in sorted(path.glob("*.sqlite3")):
        try:
            db = sqlite3.connect(file, timeout=5)
        except sqlite3.Error as ex:
            msg = f"recovery file {str(file)!r} cannot be opened: {ex}"
            raise ConfigError(msg) from ex
        try:
            with db:
                deleted += db.execute(_RELEASED_ROWS).rowcount
        except sqlite3.OperationalError as ex:
            log.warning("recovery file not compacted", extra={"file": str(file), "error": str(ex)})
        finally:
            db.close()
    if deleted:
        log.info("recovery directory compacted", extra={"dir": str(path), "released_rows": deleted})
    return deleted
