"""The recovery directory's compaction at start-up (flows/recovery.py): rows of released keys
go, and no resume epoch loads anything else than before."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from bytewax.recovery import init_db_dir

from flows.recovery import check_recovery_dir, compact_recovery_dir

# What bytewax 0.21.1 loads on a resume at epoch ?1 (copied from its binary): each key's
# latest row before that epoch; a row without state means the key is absent.
_LOAD = """
WITH max_epoch_snaps AS (
    SELECT step_id, state_key, MAX(snap_epoch) AS snap_epoch FROM snaps
    WHERE snap_epoch < ?1 GROUP BY step_id, state_key
)
SELECT step_id, state_key, ser_change FROM snaps JOIN max_epoch_snaps USING (step_id, state_key, snap_epoch)
"""


def _loaded(db: sqlite3.Connection, epoch: int) -> dict[tuple[str, str], bytes]:
    return {(step, key): state for step, key, state in db.execute(_LOAD, (epoch,)) if state is not None}


def test_released_rows_go_and_every_resume_loads_the_same(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    file = tmp_path / "part-0.sqlite3"
    rng = random.Random(14)
    rows = []
    for step in ("journeyflow.journey", "journeyflow.devices.stateful_batch"):
        for key in range(60):
            for epoch in sorted(rng.sample(range(1, 12), rng.randint(1, 4))):
                state = None if rng.random() < 0.4 else f"{step}/{key}@{epoch}".encode()
                rows.append((step, f"u{key}", epoch, state))
    with sqlite3.connect(file) as db:
        db.executemany("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)", rows)
        before = {epoch: _loaded(db, epoch) for epoch in range(1, 14)}
    # A released row with an older state of its key must stay: without it that state would come back.
    shadowing = {(s, k, e) for s, k, e, v in rows if v is None and any(
        (s2, k2) == (s, k) and e2 < e and v2 is not None for s2, k2, e2, v2 in rows)}
    released = sum(1 for s, k, e, v in rows if v is None and (s, k, e) not in shadowing)
    assert released > 0 and shadowing

    assert compact_recovery_dir(tmp_path) == released

    with sqlite3.connect(file) as db:
        after = {epoch: _loaded(db, epoch) for epoch in range(1, 14)}
        left = set(db.execute("SELECT step_id, state_key, snap_epoch FROM snaps WHERE ser_change IS NULL"))
    db.close()
    assert after == before
    assert left == shadowing
    check_recovery_dir(tmp_path)  # still a whole set of this flow's partitions
    assert compact_recovery_dir(tmp_path) == 0
