"""``journeyflow run`` end to end on the happy path: the worker as a real subprocess, against a
real Kafka-protocol broker (Tansu) and a real redis-server (``tests/conftest.py``); outputs follow
the contract, timers close sessions by the wall clock, scores reach Redis.

How the tests run the worker and know it has handled everything: ``tests/live_worker.py`` and
``tests/live_checks.py``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from journeyflow.events import parse_ts
from operators.triggers import trigger_id
from tests.conftest import KafkaBroker
from tests.helpers import at, event
from tests.live_checks import CONTRACT_PROFILE, check_store_in_step, redis_dump
from tests.live_topics import TopicReader, Topics, send
from tests.live_worker import Worker, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


# --- 1. the happy path ----------------------------------------------------------------


def _happy_events() -> tuple[list[dict[str, Any] | bytes], dict[str, Any]]:
    """Return the events of the happy path and the facts to check about them."""
    views = [event("product_view", "u-view", at(i), product_id="sku-9", category="shoes") for i in range(4)]
    purchases = [
        event("purchase", "u-buy", at(days=i), order_id=f"o-{i}", revenue=10.0 + i) for i in range(6)
    ]
    gone = [
        event("page_view", "u-gone", at(0), url="/"),
        event("purchase", "u-gone", at(1), order_id="o-gone", revenue=5.0),
        event("forget", "u-gone", at(2)),
    ]
    malformed = b'{"event_id": "e-broken", "type": "page_view", "user_id": "u-bad", '
    unknown = event("teleport", "u-odd", at(0))
    events: list[dict[str, Any] | bytes] = [*views, *purchases, malformed, unknown, *gone]
    facts = {"views": views, "purchases": purchases, "gone": gone, "malformed": malformed, "unknown": unknown}
    return events, facts


@pytest.mark.slow
def test_happy_path_outputs_follow_the_contract(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    topics, worker = live(partitions=2)
    events, facts = _happy_events()
    sent = send(kafka_broker.bootstrap, topics.events, events)
    readers = {name: TopicReader(kafka_broker.bootstrap, topic) for name, topic in topics.outputs().items()}
    try:
        with worker:
            changes, triggers, dead = readers["segment_changes"], readers["triggers"], readers["dead_letters"]

            def arrived() -> bool:
                for reader in readers.values():
                    reader.poll(100)
                docs = changes.docs()
                return (
                    {t["rule"] for t in triggers.docs()} >= {"product_interest", "vip_welcome"}
                    and len(dead.records) >= 2
                    and any(d["kind"] == "tombstone" for d in docs)
                    and any("highly_engaged" in d.get("entered", ()) for d in docs)
                    and any("loyal" in d.get("entered", ()) for d in docs)
                )

            wait_until(arrived, 60, "the expected triggers, segment changes and dead letters", worker)
            url = worker.env["JOURNEYFLOW_REDIS_URL"]
            # The Redis rows of u-gone's erasure travel with its tombstone; wait until applied.
            wait_until(
                lambda: "jf:profile:u-buy" in redis_dump(url) and "jf:profile:u-gone" not in redis_dump(url),
                30,
                "Redis to hold u-buy and not u-gone",
                worker,
            )
            dump = redis_dump(url)
            code, _ = worker.stop(signal.SIGTERM)
            assert code == 0, worker.stderr()
            for reader in readers.values():
                reader.drain(300)
    finally:
        for reader in readers.values():
            reader.close()

    # Every output record is keyed by its user id and is a JSON object of its kind.
    for name, reader in readers.items():
        for record in reader.records:
            doc = orjson.loads(record.value)
            if name != "dead_letters" or doc.get("user_id") is not None:
                assert record.key == doc["user_id"].encode(), (name, record)

    # 1a. Four views of one product within a day: product_interest on the 4th, highly_engaged entered.
    views = facts["views"]
    [interest] = [t for t in readers["triggers"].docs() if t["rule"] == "product_interest"]
    assert set(interest) == {"kind", "trigger_id", "rule", "user_id", "ts", "cause_event_id", "variant", "payload"}
    assert interest["kind"] == "trigger" and interest["user_id"] == "u-view"
    assert interest["cause_event_id"] == views[3]["event_id"]
    assert parse_ts(interest["ts"]) == parse_ts(views[3]["ts"])
    assert interest["variant"] == "treatment"
    assert interest["payload"] == {"product_id": "sku-9", "category": "shoes", "views_24h": 4}
    # Deterministic: the same input gives the same id, so consumers can drop repeats.
    assert interest["trigger_id"] == trigger_id("product_interest", "u-view", views[3]["event_id"])
    engaged = [c for c in readers["segment_changes"].docs() if "highly_engaged" in c.get("entered", ())]
    assert len(engaged) == 1
    [entry] = engaged
    assert {"kind", "user_id", "ts", "entered", "exited", "segments", "cause_event_id", "profile"} <= set(entry)
    assert entry["kind"] == "segment_change" and entry["user_id"] == "u-view"
    assert entry["cause_event_id"] == views[3]["event_id"]
    assert parse_ts(entry["ts"]) == parse_ts(views[3]["ts"])
    assert "highly_engaged" in entry["segments"]
    assert set(entry["profile"]) >= CONTRACT_PROFILE

    # 1b. Six purchases within 30 days: loyal entered, vip_welcome fired, on the 6th.
    purchases = facts["purchases"]
    [vip] = [t for t in readers["triggers"].docs() if t["rule"] == "vip_welcome"]
    assert vip["user_id"] == "u-buy" and vip["cause_event_id"] == purchases[5]["event_id"]
    assert vip["payload"] == {"segment": "loyal", "purchases_30d": 6}
    assert vip["trigger_id"] == trigger_id("vip_welcome", "u-buy", f"loyal|{purchases[5]['event_id']}")
    [loyal] = [c for c in readers["segment_changes"].docs() if "loyal" in c.get("entered", ())]
    assert loyal["user_id"] == "u-buy" and loyal["cause_event_id"] == purchases[5]["event_id"]
    assert parse_ts(loyal["ts"]) == parse_ts(purchases[5]["ts"])
    assert loyal["profile"]["frequency_30d"] == 6
    assert loyal["profile"]["monetary_30d"] == pytest.approx(sum(10.0 + i for i in range(6)))
    assert loyal["profile"]["recency_days"] == 0.0

    # 1c. Dead letters: the reason, the original text, and where it came from.
    dead = {d["code"]: d for d in readers["dead_letters"].docs()}
    assert set(dead) == {"invalid_json", "unknown_type"}, dead
    broken = dead["invalid_json"]
    assert broken["kind"] == "dead_letter"
    assert broken["reason"].startswith("invalid JSON")
    assert broken["raw"] == facts["malformed"].decode()
    assert broken["source"] == sent.source(events.index(facts["malformed"]), topics.events)
    odd = dead["unknown_type"]
    assert odd["reason"] == "unknown type: teleport"
    assert orjson.loads(odd["raw"]) == facts["unknown"]
    assert odd["source"] == sent.source(events.index(facts["unknown"]), topics.events)

    # 1d. Forget: a tombstone keyed by the user, nothing of them left in Redis.
    tombstones = [r for r in readers["segment_changes"].records if orjson.loads(r.value)["kind"] == "tombstone"]
    assert [(r.key, orjson.loads(r.value)["user_id"]) for r in tombstones] == [(b"u-gone", "u-gone")]
    assert orjson.loads(tombstones[0].value)["cause_event_id"] == facts["gone"][2]["event_id"]
    assert not any(k.endswith(":u-gone") for k in dump)
    assert not any("u-gone" in members for k, members in dump.items() if k.startswith("jf:segment:"))

    # Redis: profiles with RFM fields and updated_at; segment sets in step with them.
    buyer = dump["jf:profile:u-buy"]
    assert "loyal" in orjson.loads(buyer["segments"])
    assert buyer["frequency_30d"] == "6"
    assert float(buyer["monetary_30d"]) == pytest.approx(sum(10.0 + i for i in range(6)))
    assert float(buyer["recency_days"]) == 0.0
    assert parse_ts(buyer["updated_at"]) == parse_ts(purchases[5]["ts"])
    assert "u-buy" in dump["jf:segment:loyal"]
    assert "u-view" in dump["jf:segment:highly_engaged"]
    assert "highly_engaged" in orjson.loads(dump["jf:profile:u-view"]["segments"])
    check_store_in_step(dump)
    # None of these users fires a rule with a holdout group (cart_abandonment, reengagement).
    assert readers["holdouts"].records == []


@pytest.mark.slow
def test_timers_close_sessions_by_the_wall_clock(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # A 2-second session gap and no allowed lateness: the cart left behind is
    # abandoned 2 s (wall clock) after the user's last event, whatever the event times.
    topics, worker = live(partitions=2, sessions_gap_s=2, lateness_allowed_s=0)
    start = parse_ts(at(0))
    cart = [
        event("product_view", "u-cart", start, product_id="sku-5"),
        event("add_to_cart", "u-cart", start + 1000, product_id="sku-5", price=20.0),
    ]
    sessions = TopicReader(kafka_broker.bootstrap, topics.sessions)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            send(kafka_broker.bootstrap, topics.events, cart)
            sent_at = time.monotonic()
            wait_until(lambda: triggers.poll(100) or triggers.records, 30, "a cart_abandonment trigger", worker)
            waited = time.monotonic() - sent_at
            wait_until(lambda: sessions.poll(100) or sessions.records, 10, "the closed session", worker)
    finally:
        sessions.close()
        triggers.close()
    [abandoned] = triggers.docs()
    assert abandoned["rule"] == "cart_abandonment" and abandoned["user_id"] == "u-cart"
    assert abandoned["payload"] == {"products": ["sku-5"], "cart_value": 20.0}
    # Closed at the event time of the last event plus the gap.
    assert parse_ts(abandoned["ts"]) == start + 1000 + 2000
    [session] = sessions.docs()
    assert session["user_id"] == "u-cart"
    assert waited >= 1.5  # not before the gap had passed on the wall clock


@pytest.mark.slow
def test_scores_reach_the_redis_profile_as_soon_as_they_exist(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # Scores from the first example on (no warm-up), so a purchase is scored at once.
    topics, worker = live(partitions=2, models_min_examples=0)
    events = [event("purchase", f"u-s{n}", at(n), order_id=f"o-s{n}", revenue=20.0) for n in range(3)]
    with worker:
        send(kafka_broker.bootstrap, topics.events, events)
        url = worker.env["JOURNEYFLOW_REDIS_URL"]

        def scored() -> bool:
            dump = redis_dump(url)
            rows = [dump.get(f"jf:profile:u-s{n}", {}) for n in range(3)]
            return all("churn_risk" in row and "purchase_propensity" in row for row in rows)

        wait_until(scored, 60, "churn_risk and purchase_propensity in every profile hash", worker)
        dump = redis_dump(url)
    for n in range(3):
        row = dump[f"jf:profile:u-s{n}"]
        assert 0.0 <= float(row["churn_risk"]) <= 1.0 and 0.0 <= float(row["purchase_propensity"]) <= 1.0
        assert row["frequency_30d"] == "1"  # the profile's own fields are there too
    check_store_in_step(dump)
