"""``journeyflow run``'s metrics: readiness, reads, dead letters, conversions and uplift (a real
subprocess, broker and redis-server).

How the tests run the worker and know it has handled everything: ``tests/live_worker.py`` and
``tests/live_checks.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.conftest import KafkaBroker, free_port
from tests.helpers import at, event
from tests.live_checks import try_metrics
from tests.live_topics import TopicReader, Topics, send
from tests.live_worker import Worker, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


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
