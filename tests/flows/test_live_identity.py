"""Identity stitching in the live worker: Kafka in and out, Redis profiles and aliases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KafkaBroker
from tests.helpers import at, event
from tests.live_checks import redis_dump, wait_committed
from tests.live_topics import TopicReader, Topics, send
from tests.live_worker import Worker, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def _anon(kind: str, device: str, ts: str, **props: Any) -> dict[str, Any]:
    doc = event(kind, ts=ts, **props)
    del doc["user_id"]
    doc["anonymous_id"] = device
    return doc


@pytest.mark.slow
def test_a_login_merges_the_device_into_the_customer_live(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    topics, worker = live(partitions=2)
    views = [_anon("product_view", "a-live", at(m), product_id="coat-1") for m in (0, 1, 2)]
    login = event("login", "u-live", at(3), anonymous_id="a-live")
    known_view = event("product_view", "u-live", at(4), product_id="coat-1")
    changes = TopicReader(kafka_broker.bootstrap, topics.segment_changes)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            url = worker.env["JOURNEYFLOW_REDIS_URL"]
            send(kafka_broker.bootstrap, topics.events, views)
            # The anonymous visitor has a profile of its own first.
            wait_until(lambda: "jf:profile:a-live" in redis_dump(url), 60, "the device's own profile", worker)
            send(kafka_broker.bootstrap, topics.events, [login, known_view])

            def merged() -> bool:
                changes.poll(100)
                triggers.poll(100)
                dump = redis_dump(url)
                return (
                    any(d["kind"] == "merge" for d in changes.docs())
                    and any(t["rule"] == "product_interest" for t in triggers.docs())
                    and dump.get("jf:alias:a-live") == "u-live"
                    and "jf:profile:a-live" not in dump
                )

            wait_until(merged, 60, "the merge record, the trigger, the alias and the device's hash gone", worker)
            dump = redis_dump(url)
    finally:
        changes.close()
        triggers.close()
    [merge] = [d for d in changes.docs() if d["kind"] == "merge"]
    assert merge == {
        "kind": "merge",
        "user_id": "u-live",
        "anonymous_id": "a-live",
        "ts": at(3),
        "cause_event_id": login["event_id"],
    }
    [fired] = [t for t in triggers.docs() if t["rule"] == "product_interest"]
    assert fired["user_id"] == "u-live" and fired["payload"]["views_24h"] == 4
    assert not any(key.startswith("jf:segment:") and "a-live" in members for key, members in dump.items())
    assert "jf:profile:u-live" in dump


@pytest.mark.slow
def test_a_kill_9_and_restart_lose_no_link(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topics, worker = live(partitions=2, recovery=True)
    recovery = tmp_path / "recovery"
    link = [_anon("page_view", "a-crash", at(0)), event("login", "u-crash", at(1), anonymous_id="a-crash")]
    try:
        worker.start()
        sent = send(kafka_broker.bootstrap, topics.events, link)
        wait_committed(recovery, sent.ends(), worker)
        worker.kill()
        worker.start()
        # Three logged-out views after the restart: the link must still send them to the customer.
        later = [_anon("product_view", "a-crash", at(m), product_id="coat-2") for m in (2, 3, 4)]
        later.append(event("product_view", "u-crash", at(5), product_id="coat-2"))
        send(kafka_broker.bootstrap, topics.events, later)
        triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
        try:

            def fired() -> list[dict[str, Any]]:
                triggers.poll(100)
                return [t for t in triggers.docs() if t["rule"] == "product_interest"]

            [trigger] = wait_until(fired, 60, "product_interest for the customer after the restart", worker)
        finally:
            triggers.close()
    finally:
        worker.kill()
    assert trigger["user_id"] == "u-crash" and trigger["payload"]["views_24h"] == 4
