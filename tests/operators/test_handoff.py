"""The identity hand-off part: a device's state joins its customer's at a login."""

from __future__ import annotations

import orjson

from flows.step_configs import journey_config
from journeyflow.step_records import Handoff, Tally, UserUpdate
from operators import profiles
from operators.handoff import hand_off, merge_in
from operators.journey_state import JourneyState
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)


def _login() -> object:
    return CFG.parser.parse(orjson.dumps(event("login", ts=at(10), anonymous_id="a1")), "t:1")


def _device() -> JourneyState:
    state = JourneyState(user="a1", max_ts_ms=500, processed=2)
    state.profile = profiles.new_profile(100)
    state.profile.events_total = 2
    return state


def test_a_device_with_a_profile_says_merge_and_reports_its_counts() -> None:
    state, out = hand_off(_device(), CFG, _login())
    assert [type(o) for o in out] == [UserUpdate, Tally] and out[0].kind == "merge"
    assert state.profile is not None


def test_a_device_that_knew_nothing_only_reports_its_counts() -> None:
    _, out = hand_off(JourneyState(user="a1", processed=1), CFG, _login())
    assert [type(o) for o in out] == [Tally]


def test_a_customer_without_a_profile_takes_the_devices_and_is_scored_anew() -> None:
    login = _login()
    customer = JourneyState(user="u1", devices=("a0",))
    out: list = []
    replaced, score = merge_in(customer, CFG, Handoff("a1", _device(), login), out)
    assert replaced is None and out == []
    assert customer.profile is not None and customer.profile.events_total == 2
    assert customer.devices == ("a0", "a1") and customer.max_ts_ms == 500
    assert score is not None and (score.at_ms, score.cause, score.place) == (500, "merge", True)


def test_a_refusal_on_the_device_is_the_customers_refusal() -> None:
    device = _device()
    device.opted_out = True
    customer = JourneyState(user="u1", processed=4)
    customer.profile = profiles.new_profile(0)
    out: list = []
    replaced, score = merge_in(customer, CFG, Handoff("a1", device, _login()), out)
    assert replaced is not None and replaced.opted_out and replaced.profile is None and score is None
    assert replaced.devices == ("a1",)
    assert [o.kind for o in out if isinstance(o, UserUpdate)] == ["opt_out"]


def test_a_link_without_state_only_remembers_the_device() -> None:
    customer = JourneyState(user="u1")
    assert merge_in(customer, CFG, Handoff("a1", None, _login()), []) == (None, None)
    assert customer.devices == ("a1",)
