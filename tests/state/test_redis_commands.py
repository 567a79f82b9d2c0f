"""The commands each store record sends to Redis (state/redis_commands.py), against a
real redis-server: built only, then applied in record order when they are sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange, Tombstone
from state.redis_commands import RecordCommands
from state.store import Restore, StoreRecord, erased_key

pytestmark = pytest.mark.redis

TS = 1_795_343_460_000  # 2026-11-22T10:31:00Z


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def run(client: redis.Redis, records: list[StoreRecord], **options: Any) -> None:
    commands = RecordCommands(key_prefix=options.pop("key_prefix", "jf:"), ttl_s=options.pop("ttl_s", 0))
    for command in [*commands.load, *commands.commands(records)]:
        client.execute_command(*command)


def test_commands_are_only_built_until_they_are_sent(client: redis.Redis) -> None:
    commands = RecordCommands(key_prefix="jf:", ttl_s=0)
    built = commands.commands([ProfileRow("u1", TS, {"visits": 1}, ("vip",))])
    assert client.keys("*") == []
    # The scripts run by their SHA1: a Redis that has not loaded them (restarted empty) refuses them.
    client.script_flush()
    with pytest.raises(redis.exceptions.NoScriptError):
        client.execute_command(*built[0])
    for command in [*commands.load, *built]:
        client.execute_command(*command)
    assert client.hgetall("jf:profile:u1") == {"visits": "1", "segments": '["vip"]', "updated_at": "2026-11-22T10:31:00Z"}
    assert client.smembers("jf:segment:vip") == {"u1"}


def test_updated_at_only_moves_forward_whatever_its_precision(client: redis.Redis) -> None:
    # 10:31:00Z (no milliseconds) and 10:31:00.250Z compare in time order, not as text.
    run(client, [ProfileRow("u1", TS + 250, {"visits": 2})])
    run(client, [ProfileRow("u1", TS, {"visits": 1})])
    profile = client.hgetall("jf:profile:u1")
    assert profile["updated_at"] == "2026-11-22T10:31:00.250Z"
    # Fields are partial updates in record order: the later record's value is kept.
    assert profile["visits"] == "1"
    run(client, [ProfileRow("u1", TS + 1000, {})])
    assert client.hget("jf:profile:u1", "updated_at") == "2026-11-22T10:31:01Z"


def test_segment_changes_restores_and_tombstones_keep_the_sets_in_step(client: redis.Redis) -> None:
    run(client, [ProfileRow("u1", TS, {"visits": 1}, ("a", "b")), IdentityMerge("u1", "dev-1", TS, "e1")])
    run(client, [SegmentChange("u1", TS, ("c",), ("a",), ("b", "c"), "e2", {})])
    assert (client.smembers("jf:segment:a"), client.smembers("jf:segment:c")) == (set(), {"u1"})
    assert client.hget("jf:profile:u1", "segments") == '["b","c"]'
    # A restore rewrites what Redis lost (the repair after a flush or an empty restart).
    client.flushall()
    run(client, [IdentityMerge("u1", "dev-1", TS, "e1"), Restore("u1", {"visits": "5", "segments": '["d"]'})])
    assert client.hgetall("jf:profile:u1") == {"visits": "5", "segments": '["d"]'}
    assert client.smembers("jf:segment:d") == {"u1"} and client.get("jf:alias:dev-1") == "u1"
    run(client, [Tombstone("u1", TS, "e3", segments=("d",), aliases=("dev-1",))])
    # Only the erasure's time is left, under a digest of the id (a late merge must not link dev-1 again).
    assert client.keys("*") == [erased_key("jf:", "u1")]


def test_a_ttl_expires_profiles_and_aliases_and_the_prefix_names_every_key(client: redis.Redis) -> None:
    run(client, [ProfileRow("u1", TS, {"visits": 1}, ("vip",)), IdentityMerge("u1", "dev-1", TS, "e1")], key_prefix="x:", ttl_s=60)
    assert sorted(client.keys("*")) == ["x:alias:dev-1", "x:profile:u1", "x:segment:vip"]
    assert 0 < client.ttl("x:profile:u1") <= 60 and 0 < client.ttl("x:alias:dev-1") <= 60
    # Segment sets never expire (a change or a tombstone removes a member).
    assert client.ttl("x:segment:vip") == -1
    run(client, [ProfileRow("u2", TS, {"visits": 1})], key_prefix="x:")
    assert client.ttl("x:profile:u2") == -1
