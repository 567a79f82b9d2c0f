"""``journeyflow run`` end to end: the worker as a real subprocess, against a real
Kafka-protocol broker (Tansu) and a real redis-server (``tests/conftest.py``).

How the tests run the worker and know it has handled everything: ``tests/live_worker.py`` and
``tests/live_checks.py``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from journeyflow.events import parse_ts
from operators.triggers import trigger_id
from tests.conftest import KafkaBroker, RedisServer, free_port
from tests.helpers import at, event
from tests.live_checks import (
    CONTRACT_PROFILE,
    check_store_in_step,
    no_traceback,
    redis_db_url,
    redis_dump,
    try_metrics,
    wait_committed,
)
from tests.live_topics import TopicReader, Topics, make_topics, send
from tests.live_worker import Worker, wait_until, worker_env

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


# --- 2. start-up faults ---------------------------------------------------------------


def _fault_cases() -> list[Any]:
    return [
        pytest.param("unreachable_broker", id="unreachable-broker"),
        pytest.param("missing_events_topic", id="missing-events-topic"),
        pytest.param("missing_output_topic", id="missing-output-topic"),
        pytest.param("unreachable_redis", id="unreachable-redis"),
        pytest.param("bad_setting", id="bad-setting"),
        pytest.param("bad_recovery_dir", id="bad-recovery-dir"),
    ]


@pytest.mark.parametrize("fault", _fault_cases())
def test_startup_faults_exit_non_zero_with_one_clear_line(
    fault: str, kafka_broker: KafkaBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap)
    env = worker_env(kafka_broker.bootstrap, redis_db_url(redis_server, 1), topics)
    dead = f"127.0.0.1:{free_port()}"
    expected = {
        # The default connect timeout (10 s), not the tests' shorter one.
        "unreachable_broker": f"kafka broker(s) {dead} unreachable after 10 s",
        "missing_events_topic": f"topic 'no-such-events' does not exist on {kafka_broker.bootstrap}",
        "missing_output_topic": f"topic 'no-such-triggers' does not exist on {kafka_broker.bootstrap}",
        "unreachable_redis": f"redis redis://{dead}/0 unreachable after",
        "bad_setting": "sessions.gap_s must be > 0; got -5 instead",
        "bad_recovery_dir": "recovery.dir",
    }[fault]
    if fault == "unreachable_broker":
        env["JOURNEYFLOW_KAFKA_BROKERS"] = dead
        del env["JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S"]
    elif fault == "missing_events_topic":
        env["JOURNEYFLOW_KAFKA_EVENTS_TOPIC"] = "no-such-events"
    elif fault == "missing_output_topic":
        env["JOURNEYFLOW_KAFKA_TRIGGERS_TOPIC"] = "no-such-triggers"
    elif fault == "unreachable_redis":
        env["JOURNEYFLOW_REDIS_URL"] = f"redis://{dead}/0"
    elif fault == "bad_setting":
        env["JOURNEYFLOW_SESSIONS_GAP_S"] = "-5"
    elif fault == "bad_recovery_dir":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(blocker / "recovery")
    worker = Worker(env, tmp_path)
    started = time.monotonic()
    worker.start()
    code = worker.wait(60)
    elapsed = time.monotonic() - started
    stderr = worker.stderr()
    assert code == 2, stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("journeyflow: error: "), stderr
    assert expected in lines[0], stderr
    if fault == "unreachable_broker":
        assert elapsed >= 10  # it did wait for the broker
    # Nothing was started: no topic was created by asking about the missing one.
    if fault.startswith("missing"):
        consumer = KafkaConsumer(bootstrap_servers=[kafka_broker.bootstrap])
        try:
            assert not {"no-such-events", "no-such-triggers"} & consumer.topics()
        finally:
            consumer.close()


# --- 3. signals -----------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_and_sigint_stop_cleanly_and_a_restart_continues(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    port = free_port()
    topics, worker = live(partitions=2, recovery=True, metrics_port=port)
    recovery = tmp_path / "recovery"
    first = [event("product_view", "u-sig", at(i), product_id="sku-3") for i in range(2)]
    second = [event("product_view", "u-sig", at(2 + i), product_id="sku-3") for i in range(2)]
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        worker.start()
        sent = send(kafka_broker.bootstrap, topics.events, first)
        wait_committed(recovery, sent.ends(), worker)
        code, took = worker.stop(signal.SIGTERM)
        stderr = worker.stderr()
        assert code == 0, stderr
        assert took < 5, f"SIGTERM took {took:.1f} s"
        no_traceback(stderr)
        assert "journeyflow worker stopped by a signal" in stderr
        assert try_metrics(port) is None  # the process is gone, metrics with it
        assert triggers.drain(300) == []  # two views: nothing to trigger yet

        # The restart resumes from the recovery directory: the two views it
        # remembers and the two new ones make four, and product_interest fires.
        worker.start()
        sent2 = send(kafka_broker.bootstrap, topics.events, second)
        wait_until(lambda: triggers.poll(100) or triggers.records, 60, "the trigger after the restart", worker)
        [interest] = triggers.docs()
        assert interest["rule"] == "product_interest"
        assert interest["cause_event_id"] == second[1]["event_id"]
        assert interest["payload"]["views_24h"] == 4
        # Only the new messages were read again: the first ones were committed.
        wait_committed(recovery, sent2.ends(), worker)
        read = wait_until(lambda: try_metrics(port), 10, "metrics", worker)
        assert read[f'journeyflow_events_read_total{{source="kafka:{topics.events}"}}'] == len(second)

        code, took = worker.stop(signal.SIGINT)
        assert code == 0, worker.stderr()
        assert took < 5, f"SIGINT took {took:.1f} s"
        no_traceback(worker.stderr())
    finally:
        triggers.close()
        worker.kill()


# --- 6. metrics and readiness ---------------------------------------------------------


@pytest.mark.slow
def test_metrics_report_readiness_reads_and_dead_letters(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    port = free_port()
    topics, worker = live(partitions=2, metrics_port=port)
    events = [
        event("product_view", "u-m", at(i), product_id="sku-1") for i in range(4)
    ] + [b"not json", b'{"event_id": "e-x", "type": "page_view", "user_id": "u-m"}', event("teleport", "u-m")]
    with worker:
        before = wait_until(lambda: try_metrics(port), 30, "the metrics endpoint", worker)
        assert before["journeyflow_ready"] == 1.0
        send(kafka_broker.bootstrap, topics.events, events, keys=[b"u-m"] * len(events))
        source = f'source="kafka:{topics.events}"'

        def counted() -> dict[str, float] | None:
            # The trigger comes from the per-user step, the segment entry from
            # the step after the models: wait for both.
            values = try_metrics(port) or {}
            done = (
                values.get(f"journeyflow_events_read_total{{{source}}}") == len(events)
                and values.get('journeyflow_triggers_total{rule="product_interest",variant="treatment"}') == 1
                and values.get('journeyflow_segment_entries_total{segment="highly_engaged"}') == 1
            )
            return values if done else None

        values = wait_until(counted, 30, "the metrics to count every event", worker)
        code, _ = worker.stop(signal.SIGTERM)
        assert code == 0, worker.stderr()
    assert values["journeyflow_ready"] == 1.0
    assert values['journeyflow_dead_letters_total{reason="invalid_json"}'] == 1
    assert values['journeyflow_dead_letters_total{reason="missing_field"}'] == 1
    assert values['journeyflow_dead_letters_total{reason="unknown_type"}'] == 1
    assert values['journeyflow_segment_entries_total{segment="highly_engaged"}'] == 1
    lags = {k: v for k, v in values.items() if k.startswith("journeyflow_kafka_lag{")}
    assert len(lags) == 2 and all(v == 0 for v in lags.values()), lags
    assert values.get("journeyflow_kafka_errors_total") == 0
    assert values.get("journeyflow_redis_write_errors_total") == 0


@pytest.mark.slow
def test_the_worker_publishes_conversions_and_uplift_metrics(
    live: Callable[..., tuple[Topics, Worker]], kafka_broker: KafkaBroker
) -> None:
    # u-conv leaves a cart and buys two hours later: the cart_abandonment
    # trigger (u-conv is not in its holdout) converts. u-clock's purchase five
    # days on moves event time past the window plus the reorder margin, so the
    # trigger is judged and the rate gauges are set.
    port = free_port()
    topics, worker = live(partitions=2, metrics_port=port)
    cart = event("add_to_cart", "u-conv", at(0), product_id="sku-3", price=25.0)
    purchase = event("purchase", "u-conv", at(hours=2), order_id="o-conv", revenue=25.0)
    later = event("purchase", "u-clock", at(days=5), order_id="o-clock", revenue=1.0)
    conversions = TopicReader(kafka_broker.bootstrap, topics.conversions)
    triggers = TopicReader(kafka_broker.bootstrap, topics.triggers)
    try:
        with worker:
            send(kafka_broker.bootstrap, topics.events, [cart, purchase])
            wait_until(lambda: conversions.poll(100) or conversions.records, 60, "a conversion", worker)
            send(kafka_broker.bootstrap, topics.events, [later])

            def judged() -> dict[str, float] | None:
                values = try_metrics(port) or {}
                rate = 'journeyflow_conversion_rate{rule="cart_abandonment",variant="treatment"}'
                return values if rate in values else None

            values = wait_until(judged, 60, "the conversion rate gauge", worker)
            # One short poll may come back empty although the trigger is on the topic.
            wait_until(lambda: triggers.poll(100) or triggers.records, 30, "the trigger", worker)
            code, _ = worker.stop(signal.SIGTERM)
            assert code == 0, worker.stderr()
    finally:
        conversions.close()
        triggers.close()
    (record,) = conversions.docs()
    (trigger,) = [t for t in triggers.docs() if t["rule"] == "cart_abandonment"]
    assert record == {
        "kind": "conversion",
        "trigger_id": trigger["trigger_id"],
        "rule": "cart_abandonment",
        "variant": "treatment",
        "user_id": "u-conv",
        "ts": purchase["ts"],
        "cause_event_id": purchase["event_id"],
        "value": 25.0,
    }
    assert conversions.records[0].key == b"u-conv"
    assert values['journeyflow_conversions_total{rule="cart_abandonment",variant="treatment"}'] == 1
    assert values['journeyflow_conversion_rate{rule="cart_abandonment",variant="treatment"}'] == 1.0
