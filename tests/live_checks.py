"""What the live worker committed, wrote to Redis and reports on its metrics port, for the
live tests (``tests/live_worker.py`` runs the worker).

How a test knows the worker has handled *everything* it was sent (for the
generated data sets, where the expected outputs are not known in advance):
with a recovery directory, bytewax records in its SQLite files the last epoch
whose outputs are all written (``commits``) and, per epoch, the offsets its
Kafka source will resume from (``snaps`` of step ``journeyflow.read``). Once
the committed offsets reach the end of every partition (known from the
producer's acknowledgements, not from the broker's end offsets), every output
of every message is on its topic and in Redis. :func:`wait_committed` polls
for that.
"""

from __future__ import annotations

import pickle
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import redis

from journeyflow.events import parse_ts
from tests.conftest import RedisServer
from tests.live_worker import Worker, wait_until


CONTRACT_PROFILE = {
    "recency_days", "frequency_30d", "monetary_30d", "engagement", "purchase_propensity", "churn_risk"
}
# Segments and triggers that depend on the global online models (scores,
# clusters): with several partitions their values depend on the order in
# which the partitions' updates reach the one models step.
MODEL_SEGMENTS = ("at_risk",)
MODEL_SEGMENT_PREFIXES = ("cluster:",)
MODEL_RULES = ("reengagement",)


# --- recovery store, Redis, metrics ------------------------------------------------


def committed_offsets(recovery_dir: Path) -> dict[int, int]:
    """Return the source offsets of the last committed epoch, per Kafka partition.

    Empty until an epoch is committed. Reads bytewax's recovery files
    (read-only); only partitions whose offset was snapshotted are included.
    """
    commit: int | None = None
    snaps: dict[str, list[tuple[int, bytes | None]]] = {}
    files = sorted(recovery_dir.glob("*.sqlite3"))
    for path in files:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return {}
        try:
            rows = db.execute("SELECT commit_epoch FROM commits").fetchall()
            for (epoch,) in rows:
                commit = epoch if commit is None else min(commit, epoch)
            if not rows:
                return {}
            for key, epoch, blob in db.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = 'journeyflow.read'"
            ):
                snaps.setdefault(key, []).append((epoch, blob))
        except sqlite3.Error:
            return {}  # being written: try again
        finally:
            db.close()
    if commit is None:
        return {}
    offsets: dict[int, int] = {}
    for key, versions in snaps.items():
        done = [v for v in versions if v[0] <= commit]
        if done:
            _, blob = max(done, key=lambda v: v[0])
            if blob is not None:
                # bytewax pickles snapshots; ours is the next offset to read.
                offsets[int(key)] = pickle.loads(blob)
    return offsets


def wait_committed(recovery_dir: Path, ends: dict[int, int], worker: Worker, timeout_s: float = 60) -> None:
    """Wait until the worker has committed an epoch past every message sent (``ends``)."""

    def done() -> bool:
        got = committed_offsets(recovery_dir)
        return all(got.get(p, 0) >= end for p, end in ends.items())

    wait_until(done, timeout_s, f"the worker to commit offsets {ends}", worker)


def redis_db_url(server: RedisServer, db: int) -> str:
    """Return the URL of database ``db`` of ``server``, emptied."""
    url = f"redis://127.0.0.1:{server.port}/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


def redis_dump(url: str) -> dict[str, Any]:
    """Return every key of the database (but the store's markers): hashes as dicts, sets as sets."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        dump: dict[str, Any] = {}
        for key in client.scan_iter(count=1000):
            if key.startswith("jf:marker"):
                continue  # the store's loss-detection markers, not data
            kind = client.type(key)
            if kind == "hash":
                dump[key] = client.hgetall(key)
            elif kind == "set":
                dump[key] = client.smembers(key)
            elif kind == "string":
                dump[key] = client.get(key)
            else:
                dump[key] = (kind, None)
        return dump
    finally:
        client.close()


def check_store_in_step(dump: dict[str, Any]) -> None:
    """Assert that each profile's ``segments`` matches the segment sets, both ways,
    and that ``updated_at`` never lags behind ``last_seen``."""
    # The store's loss-detection markers (jf:marker...) are not data.
    dump = {k: v for k, v in dump.items() if not k.startswith("jf:marker")}
    profiles = {k.removeprefix("jf:profile:"): v for k, v in dump.items() if k.startswith("jf:profile:")}
    sets = {k.removeprefix("jf:segment:"): v for k, v in dump.items() if k.startswith("jf:segment:")}
    assert set(dump) == {f"jf:profile:{u}" for u in profiles} | {f"jf:segment:{s}" for s in sets}
    for user, fields in profiles.items():
        segments = set(orjson.loads(fields.get("segments", "[]")))
        member_of = {name for name, members in sets.items() if user in members}
        assert segments == member_of, user
        assert "updated_at" in fields, user
        if "last_seen" in fields:
            assert parse_ts(fields["updated_at"]) >= parse_ts(fields["last_seen"]), (user, fields)
    for name, members in sets.items():
        assert members <= set(profiles), name


def metrics(port: int) -> dict[str, float]:
    """Return the Prometheus text of ``http://127.0.0.1:port/metrics`` as {series: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def try_metrics(port: int) -> dict[str, float] | None:
    try:
        return metrics(port)
    except OSError:
        return None


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
