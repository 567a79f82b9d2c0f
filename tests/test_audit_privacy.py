"""A newcomer's audit of identity as a store reader sees it: `replay --redis`, then Redis.

The erasure of a linked device's alias after a login, which this audit found left set (the
link reached the store after the erasure), is fixed in the store (``state/store.py``).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from state.store import erased_key
from tests.helpers import cli_ok

def _event(event_id: str, type_: str, ts: str, **fields: object) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": type_, "ts": ts, **fields})


def _replay(events: list[bytes], tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    cli_ok("replay", str(path), "--out", str(tmp_path / "out"), "-q", "--redis", redis_url)


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



def test_erasure_after_a_login_leaves_no_alias(tmp_path: Path, redis_url: str) -> None:
    _replay(
        [
            _event("x1", "page_view", "2026-11-02T10:00:00Z", anonymous_id="a-audit"),
            _event("x2", "login", "2026-11-02T10:04:00Z", anonymous_id="a-audit", user_id="u-audit"),
            _event("x3", "page_view", "2026-11-02T10:05:00Z", user_id="u-audit"),
            _event("x4", "forget", "2026-11-04T10:00:00Z", user_id="u-audit"),
        ],
        tmp_path,
        redis_url,
    )
    # Only the erasure's time is left, under a digest of the id (state/store.erased_key).
    assert _keys(redis_url) == {erased_key("jf:", "u-audit")}
