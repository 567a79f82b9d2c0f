"""The loop step without a dataflow: attribution in event time, holdouts, pending counts,
snapshots. Variants and the bandit: test_loop_variants.py; identity merges: test_loop_identity.py."""

from __future__ import annotations

import random

import pytest

from journeyflow.records import Trigger
from operators.loop import LoopLogic
from state.serde import encode_state
from tests.operators.loop_helpers import (
    DAY,
    HOUR,
    T0,
    VARIANTS,
    clock_event,
    conversions_in,
    feed,
    loop_config,
    make_offer,
    make_purchase,
    make_trigger,
    report_of,
)


def test_two_purchases_in_the_window_give_one_conversion() -> None:
    logic = loop_config().build(None)
    out = feed(
        logic,
        [make_trigger(), make_purchase(ts=T0 + HOUR, value=20.0), make_purchase(ts=T0 + 2 * HOUR, value=30.0), clock_event(T0 + 2 * DAY)],
    )
    (conversion,) = conversions_in(out)
    assert conversion.trigger_id == "t-u1-1785000000000-cart"
    assert (conversion.variant, conversion.ts_ms, conversion.value) == ("treatment", T0 + HOUR, 20.0)
    assert conversion.cause_event_id == f"p-u1-{T0 + HOUR}"
    doc = report_of(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 1 and doc["expired"] == 0


def test_a_purchase_after_the_window_gives_none_and_the_trigger_expires() -> None:
    logic = loop_config().build(None)
    out = feed(logic, [make_trigger(), make_purchase(ts=T0 + DAY + 1), make_purchase(user="u2", ts=T0 + 3 * DAY)])
    assert conversions_in(out) == []
    doc = report_of(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 0 and doc["expired"] == 1


def test_the_window_edge_counts_and_earlier_events_do_not() -> None:
    logic = loop_config().build(None)
    out = feed(logic, [make_purchase(ts=T0 - 1), make_trigger(), make_purchase(ts=T0 + DAY)])
    (conversion,) = conversions_in(out)
    assert conversion.ts_ms == T0 + DAY


def test_the_event_that_caused_the_trigger_is_not_its_conversion() -> None:
    logic = loop_config().build(None)
    out = feed(logic, [make_purchase(ts=T0, event_id="e-cause"), make_trigger(cause="e-cause")])
    assert conversions_in(out) == []


def test_held_out_users_conversions_count_on_the_holdout_side() -> None:
    logic = loop_config().build(None)
    out = feed(
        logic,
        [
            make_trigger("u1", variant="holdout"),
            make_trigger("u2"),
            make_trigger("u3", variant="holdout"),
            make_purchase("u1", T0 + HOUR, 40.0),
            make_purchase("u2", T0 + HOUR, 10.0),
            clock_event(T0 + 2 * DAY),
        ],
    )
    assert [(c.user_id, c.variant) for c in conversions_in(out)] == [("u1", "holdout"), ("u2", "treatment")]
    # Held-out triggers go on, marked, for the holdouts output.
    assert [t.variant for t in out if isinstance(t, Trigger)] == ["holdout", "treatment", "holdout"]
    doc = report_of(logic).uplift["cart"]
    assert doc["holdout"] | {"rate_ci95": None} == {
        "n": 2, "conversions": 1, "rate": 0.5, "rate_ci95": None, "revenue_per_user": 20.0, "expired": 1, "pending": 0
    }
    assert doc["treated"]["n"] == 1 and doc["uplift_abs"] == 0.5


def test_a_trigger_behind_the_purchase_that_followed_it_still_converts() -> None:
    # Segment-entry triggers come through the models: they can arrive after
    # the user's next purchase.
    logic = loop_config(reorder_ms=6 * HOUR).build(None)
    out = feed(logic, [make_purchase(ts=T0 + 2 * HOUR), make_purchase(ts=T0 + 3 * HOUR), make_trigger(ts=T0 + HOUR)])
    (conversion,) = conversions_in(out)
    assert conversion.ts_ms == T0 + 2 * HOUR
    assert report_of(logic).max_delay_s == 3600.0


def test_goal_events_older_than_the_reorder_margin_are_forgotten() -> None:
    logic = loop_config(reorder_ms=HOUR).build(None)
    feed(logic, [make_purchase("u1", T0), make_purchase("u2", T0 + 3 * HOUR)])
    assert set(logic.state.recent) == {"u2"}
    assert conversions_in(feed(logic, [make_trigger("u1", ts=T0 - 1)])) == []


def test_a_cel_goal_counts_only_a_click_on_the_sent_campaign() -> None:
    cfg = loop_config(
        """
[triggers.mail]
on = "event"
payload = { campaign = "'spring'" }
goal = { event_types = ["email_click"], window_s = 3600, when = "event.campaign == trigger.payload.campaign" }
"""
    )
    logic = cfg.build(None)
    out = feed(
        logic,
        [
            make_trigger(rule="mail", payload={"campaign": "spring"}),
            make_purchase(ts=T0 + 1),
            make_purchase(ts=T0 + 2, type="email_click", campaign="autumn"),
            make_purchase(ts=T0 + 3, type="email_click", campaign="spring", value=0.0),
        ],
    )
    assert [(c.rule, c.ts_ms) for c in conversions_in(out)] == [("mail", T0 + 3)]
    assert cfg.goal_types == {"purchase", "email_click"}


def test_pending_triggers_are_reported_apart() -> None:
    logic = loop_config().build(None)
    feed(logic, [make_trigger("u1"), make_trigger("u2", ts=T0 + 2 * DAY), make_purchase("u2", T0 + 2 * DAY + HOUR)])
    doc = report_of(logic).uplift["cart"]
    # u1's window passed: judged (expired). u2 converted, but its window is still open.
    assert doc["treated"]["n"] == 1 and doc["expired"] == 1 and doc["pending"] == 1


def _pending_by_walk(logic: LoopLogic, rule: str) -> dict[str, int]:
    """The pending counts as a walk over every open trigger finds them (what ``pending`` keeps)."""
    counts: dict[str, int] = {}
    for followed_list in logic.state.open.values():
        for followed in followed_list:
            if followed.rule == rule:
                counts[followed.arm] = counts.get(followed.arm, 0) + 1
    return counts


def test_the_pending_counts_kept_match_the_open_triggers_as_time_passes() -> None:
    logic = loop_config(VARIANTS).build(None)
    rng = random.Random(3)
    for i in range(400):
        ts = T0 + i * HOUR // 4
        logic.on_item(make_offer(f"u{i % 37}", ts))
        if rng.random() < 0.3:
            logic.on_item(make_purchase(f"u{rng.randrange(37)}", ts + 60_000))
        if i % 50 == 0:
            arms = logic.uplift("offer")["arms"]
            walked = _pending_by_walk(logic, "offer")
            assert walked, "some triggers must still be open"
            assert {arm: doc["pending"] for arm, doc in arms.items() if doc["pending"]} == walked
    # Matured triggers leave the counts: a day and more later, only the newest are open.
    assert sum(logic.state.pending["offer"].values()) == sum(_pending_by_walk(logic, "offer").values()) < 400


def test_a_snapshot_without_pending_counts_is_recounted() -> None:
    import pickle

    cfg = loop_config(VARIANTS)
    first = cfg.build(None)
    for i in range(20):
        first.on_item(make_offer(f"u{i}", T0 + i * HOUR))
    # A snapshot from before the counts were kept: the same state without the field.
    reduced = first.state.__reduce_ex__(5)
    old = reduced[0](*reduced[1])
    for name, value in reduced[2][1].items():
        if name != "pending":
            object.__setattr__(old, name, value)
    resumed = cfg.build(pickle.dumps(old, protocol=5))
    assert resumed.state.pending == first.state.pending
    assert resumed.uplift("offer") == first.uplift("offer")



def test_a_snapshot_naming_the_state_classes_under_operators_loop_still_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Snapshots taken before operators/loop_state.py existed name LoopState and
    # _Open under operators.loop; operators.loop re-exports them for those.
    import operators.loop_state as loop_state

    cfg = loop_config(VARIANTS)
    first = cfg.build(None)
    for i in range(20):
        first.on_item(make_offer(f"u{i}", T0 + i * HOUR))
    assert first.state.open, "some triggers must be open, so that _Open instances are in the snapshot"
    monkeypatch.setattr(loop_state.LoopState, "__module__", "operators.loop")
    monkeypatch.setattr(loop_state._Open, "__module__", "operators.loop")
    old = encode_state(first.state)  # the layout of those days: the state pickled whole
    monkeypatch.undo()
    assert b"operators.loop_state" not in old and b"operators.loop" in old
    resumed = cfg.build(old)
    assert resumed.snapshot() == first.snapshot()
    assert resumed.uplift("offer") == first.uplift("offer")
