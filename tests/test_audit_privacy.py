"""A newcomer's audit of identity as a store reader sees it: `replay --redis`, then Redis.

The erasure of a linked device's alias after a login, which this audit found left set, is
fixed and tested on main (4a385ff, tests/state/test_store_contract.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent


def _event(event_id: str, type_: str, ts: str, **fields: object) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": type_, "ts": ts, **fields})


def _replay(events: list[bytes], tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "journeyflow.cli", "replay", str(path), "--out", str(tmp_path / "out"), "-q",
         "--redis", redis_url],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT": "true"},
    )
    assert result.returncode == 0, result.stderr


def _keys(redis_url: str) -> set[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return {key for key in client.scan_iter() if not key.startswith("jf:marker")}
    finally:
        client.close()


def test_a_linked_device_keeps_its_alias(tmp_path: Path, redis_url: str) -> None:
    # What a web page that only knows the cookie reads (README, "Identity stitching").
    _replay(
        [
            _event("x1", "page_view", "2026-11-02T10:00:00Z", anonymous_id="a-audit"),
            _event("x2", "login", "2026-11-02T10:04:00Z", anonymous_id="a-audit", user_id="u-audit"),
            _event("x3", "page_view", "2026-11-02T10:05:00Z", user_id="u-audit"),
        ],
        tmp_path,
        redis_url,
    )
    assert "jf:alias:a-audit" in _keys(redis_url)
