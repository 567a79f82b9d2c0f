"""What only the Redis profile store has: TTL, key layout, retries, losses noticed
(a real redis-server, ``tests/conftest.py``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import redis

from config.settings import load_settings
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.metrics import REDIS_WRITE_ERRORS, SERVICE_DOWN
from journeyflow.outages import RetryPolicy
from journeyflow.records import IdentityMerge
from state.redis_store import RedisStore
from state.store import LOSSES, Restore
from tests.conftest import RedisServer, free_port
from tests.state.store_records import TS, change, row


# --- Redis only -------------------------------------------------------------------


@pytest.mark.redis
def test_redis_layout_and_prefix(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, key_prefix="test:")
    try:
        store.apply([row("u1", visits=1), change("u1", ("vip",), (), ("vip",))])
        keys = sorted(store.client.keys("*"))
        # Besides the data, the markers of loss detection: one shared, one per store (expiring).
        assert [k for k in keys if not k.startswith("test:marker")] == ["test:profile:u1", "test:segment:vip"]
        markers = [k for k in keys if k.startswith("test:marker")]
        assert len(markers) == 2 and "test:marker" in markers
        assert 0 < store.client.ttl(next(k for k in markers if k != "test:marker")) <= 86400
        assert store.client.type("test:profile:u1") == "hash"
        assert store.client.type("test:segment:vip") == "set"
    finally:
        store.close()


@pytest.mark.redis
def test_redis_that_lost_its_data_is_noticed_and_a_restore_rewrites_a_user(redis_url: str) -> None:
    store = RedisStore.connect(redis_url)
    try:
        store.apply([row("u1", visits=1), change("u1", ("vip",), (), ("vip",))])
        before = LOSSES.last()
        store.apply([row("u1", visits=2)])
        assert LOSSES.last() == before  # nothing lost
        store.client.flushdb()
        store.apply([row("u2", visits=1)])
        assert LOSSES.last() > before
        store.apply([Restore("u1", {"visits": "2", "segments": '["vip"]', "updated_at": "2026-11-22T10:31:00Z"})])
        assert store.profile("u1") == {"visits": "2", "segments": '["vip"]', "updated_at": "2026-11-22T10:31:00Z"}
        assert store.members("vip") == {"u1"}
    finally:
        store.close()


@pytest.mark.redis
def test_redis_ttl_is_reset_on_every_profile_write(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, ttl_s=120)
    try:
        store.apply([row("u1", visits=1)])
        store.client.expire("jf:profile:u1", 5)
        store.apply([change("u1", ("vip",), (), ("vip",))])
        assert 100 < store.client.ttl("jf:profile:u1") <= 120
        # Segment sets are shared by many users: they do not expire.
        assert store.client.ttl("jf:segment:vip") == -1
        # A device's alias lives as long as a profile.
        store.apply([IdentityMerge("u1", "a1", TS, "e-login")])
        assert 100 < store.client.ttl("jf:alias:a1") <= 120
    finally:
        store.close()
    no_ttl = RedisStore.connect(redis_url)
    try:
        no_ttl.apply([row("u2", visits=1)])
        assert no_ttl.client.ttl("jf:profile:u2") == -1
    finally:
        no_ttl.close()


@pytest.mark.redis
def test_redis_errors_that_cannot_heal_are_not_retried(redis_url: str) -> None:
    store = RedisStore.connect(redis_url, policy=RetryPolicy(0.01, 0.01))
    errors_before = REDIS_WRITE_ERRORS._value.get()
    try:
        store.client.set("jf:segment:vip", "not a set")
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            store.apply([change("u1", ("vip",), (), ("vip",))])
        assert REDIS_WRITE_ERRORS._value.get() == errors_before
    finally:
        store.close()


@pytest.mark.redis
def test_redis_unreachable_at_start_up() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match=f"redis {url} unreachable after"):
        RedisStore.connect(url, connect_timeout_s=1)
    assert time.monotonic() - started < 1 + 5


@pytest.mark.redis
def test_redis_restarted_mid_run_is_retried_until_it_is_back(
    spawn_redis: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = spawn_redis()
    store = RedisStore.connect(server.url, policy=RetryPolicy(0.05, 0.4))
    caplog.set_level(logging.WARNING, logger="journeyflow.redis")
    try:
        store.apply([row("u1", visits=1)])
        errors_before = REDIS_WRITE_ERRORS._value.get()
        server.stop()
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            started = time.monotonic()
            store.apply([row("u2", visits=2), change("u2", ("vip",), (), ("vip",))])
        finally:
            restart.join()
        assert time.monotonic() - started >= 0.9  # it did wait for the restart
        assert REDIS_WRITE_ERRORS._value.get() > errors_before
        messages = [r.getMessage() for r in caplog.records if r.name == "journeyflow.redis"]
        assert "redis unavailable; input paused, retrying with back-off" in messages
        assert messages[-1] == "redis available again; input resumed"
        # The server came back empty (no persistence): the retried batch is all there.
        assert store.profile("u2") == {
            "visits": "2", "updated_at": "2026-11-22T10:31:00Z", "segments": '["vip"]'
        }
        assert store.members("vip") == {"u2"}
    finally:
        store.close()


@pytest.mark.redis
def test_redis_gives_up_only_past_the_deadline(spawn_redis: Callable[[], RedisServer]) -> None:
    server = spawn_redis()
    store = RedisStore.connect(server.url, policy=RetryPolicy(0.01, 0.05, give_up_after_s=0.5))
    errors_before = REDIS_WRITE_ERRORS._value.get()
    server.stop()
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match=r"redis \(profile store\) unavailable for \d+ s, beyond outages.give_up_after_s = 0.5"):
        store.apply([row("u1", visits=1)])
    assert time.monotonic() - started >= 0.5
    assert REDIS_WRITE_ERRORS._value.get() >= errors_before + 5
    assert SERVICE_DOWN.labels(service="redis")._value.get() == 1
    store.close()
    assert SERVICE_DOWN.labels(service="redis")._value.get() == 0


@pytest.mark.redis
def test_redis_store_from_settings(redis_url: str) -> None:
    env = {
        "JOURNEYFLOW_REDIS_URL": redis_url,
        "JOURNEYFLOW_REDIS_KEY_PREFIX": "s:",
        "JOURNEYFLOW_REDIS_PROFILE_TTL_S": "60",
    }
    store = RedisStore.from_settings(load_settings(env=env).redis)
    try:
        store.apply([row("u1", visits=1)])
        assert 0 < store.client.ttl("s:profile:u1") <= 60
    finally:
        store.close()
    with pytest.raises(ConfigError, match="redis.url must be"):
        RedisStore.from_settings(load_settings(env={}).redis)
