"""The profile store under the replay of an unfinished epoch after a restart, Redis and
in-memory alike."""

from __future__ import annotations

import orjson
import pytest

from journeyflow.records import ProfileRow, SegmentChange, Tombstone
from state.memory_store import InMemoryStore
from state.redis_store import RedisStore
from state.store import StateStore

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


# --- the profile store under replays ------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_store_stays_in_step_when_a_replayed_change_differs(kind: str, request: pytest.FixtureRequest) -> None:
    # After a restart the unfinished epoch is replayed from the last snapshot,
    # and the models may decide differently the second time: the replayed
    # change enters cluster:5 where the first one had entered cluster:3, and
    # nothing will ever say "exited cluster:3". Memberships must follow the list.
    store: StateStore = (
        RedisStore.connect(request.getfixturevalue("redis_url")) if kind == "redis" else InMemoryStore()
    )
    ts = 1_795_343_460_000
    try:
        store.apply([SegmentChange("u1", ts, ("new_visitor",), (), ("new_visitor",), "e1", {})])
        # First pass of the unfinished epoch, then the crash.
        store.apply([SegmentChange("u1", ts + 1, ("cluster:3",), (), ("cluster:3", "new_visitor"), "e2", {})])
        # The replay, from the state before e2.
        store.apply([
            SegmentChange("u1", ts + 1, ("cluster:5",), (), ("cluster:5", "new_visitor"), "e2", {}),
            ProfileRow("u1", ts + 1, {"visits": 2}, ("cluster:5", "new_visitor")),
        ])
        assert store.members("cluster:3") == set()
        assert store.members("cluster:5") == {"u1"}
        assert store.members("new_visitor") == {"u1"}
        profile = store.profile("u1")
        assert profile is not None and orjson.loads(profile["segments"]) == ["cluster:5", "new_visitor"]
        # The erasure removes every membership the profile held, whatever the tombstone lists.
        store.apply([Tombstone("u1", ts + 2, "e3", ("new_visitor",))])
        assert store.profile("u1") is None
        assert store.members("cluster:5") == set() and store.members("new_visitor") == set()
    finally:
        store.close()
