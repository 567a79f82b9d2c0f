"""The loop step across identity merges: a trigger sent to a visitor converts as the
customer they log in as."""

from __future__ import annotations

from journeyflow.records import IdentityMerge
from state.serde import encode_state
from tests.operators.loop_helpers import (
    DAY,
    HOUR,
    T0,
    clock_event,
    conversions_in,
    feed,
    loop_config,
    make_purchase,
    make_trigger,
    report_of,
)


def _login(device: str, customer: str, ts: int) -> IdentityMerge:
    return IdentityMerge(user_id=customer, anonymous_id=device, ts_ms=ts, cause_event_id=f"login-{device}")


def test_a_visitor_who_logs_in_and_buys_converts_as_the_customer() -> None:
    logic = loop_config().build(None)
    out = feed(logic, [make_trigger("anon-1", T0), _login("anon-1", "c1", T0 + HOUR), make_purchase("c1", T0 + 2 * HOUR)])
    (conversion,) = conversions_in(out)
    assert (conversion.user_id, conversion.trigger_id) == ("c1", f"t-anon-1-{T0}-cart")
    # The window still closes on time, under the customer: one trigger, one conversion.
    feed(logic, [clock_event(T0 + 3 * DAY)])
    doc = report_of(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 1 and doc["expired"] == 0
    assert logic.state.open == {} and logic.state.moved == {}


def test_a_purchase_that_reaches_the_loop_before_the_login_still_counts() -> None:
    logic = loop_config().build(None)
    out = feed(logic, [make_trigger("anon-1", T0), make_purchase("c1", T0 + 2 * HOUR), _login("anon-1", "c1", T0 + HOUR)])
    assert [c.user_id for c in conversions_in(out)] == ["c1"]


def test_another_customers_purchase_or_an_unrelated_login_converts_nothing() -> None:
    logic = loop_config().build(None)
    out = feed(
        logic,
        [make_trigger("anon-1", T0), _login("anon-2", "c1", T0 + HOUR), make_purchase("c1", T0 + 2 * HOUR)],
    )
    assert conversions_in(out) == []
    feed(logic, [clock_event(T0 + 3 * DAY)])
    assert report_of(logic).uplift["cart"]["expired"] == 1


def test_a_snapshot_from_before_moves_existed_resumes() -> None:
    logic = loop_config().build(None)
    feed(logic, [make_trigger("anon-1", T0)])
    del logic.state.moved
    resumed = loop_config().build(encode_state(logic.state))  # the layout of those days: pickled whole
    out = feed(resumed, [_login("anon-1", "c1", T0 + HOUR), make_purchase("c1", T0 + 2 * HOUR), clock_event(T0 + 3 * DAY)])
    assert [c.user_id for c in conversions_in(out)] == ["c1"]
