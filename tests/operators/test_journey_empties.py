"""A user's open sessions, cooldowns and pending labels share one empty container until written
(operators/journey_state.py: NO_SESSIONS, NO_COOLDOWNS, NO_PENDING)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from flows.step_configs import journey_config
from journeyflow.generator import GeneratorConfig, generate
from journeyflow.step_records import Handoff, RawRecord
from operators import profiles
from operators.handoff import merge_in
from operators.journey_state import NO_COOLDOWNS, NO_PENDING, NO_SESSIONS, JourneyState
from operators.labels import Pending
from operators.model_asks import take_snapshot
from operators.rules import load_rules
from operators.sessions import Session
from tests.helpers import at, event, replay, settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
DAY = 86_400_000


def _raw(doc: dict[str, Any]) -> RawRecord:
    return RawRecord(orjson.dumps(doc), "events/0@1", doc["user_id"])


def _assert_untouched() -> None:
    assert NO_SESSIONS == [] and NO_COOLDOWNS == {} and NO_PENDING == []


def test_a_new_user_holds_the_shared_empties() -> None:
    state = JourneyState()
    assert state.sessions is NO_SESSIONS and state.cooldowns is NO_COOLDOWNS and state.pending is NO_PENDING


def test_an_event_opens_a_session_of_the_users_own_and_its_close_gives_it_back() -> None:
    logic = CFG.build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    assert len(logic.state.sessions) == 1 and logic.state.sessions is not NO_SESSIONS
    logic.on_item(_raw(event("page_view", ts=at(days=1))))  # closes the first, opens another
    logic.on_eof()
    assert logic.state.sessions is NO_SESSIONS
    _assert_untouched()


def test_a_firing_with_a_cooldown_writes_the_users_own_cooldowns() -> None:
    logic = CFG.build(None)
    for minute in range(5):  # product_interest: a fourth view within a day, cooldown per product
        logic.on_item(_raw(event("product_view", ts=at(minute), product_id="sku-9")))
    assert list(logic.state.cooldowns) == ["product_interest|sku-9"]
    _assert_untouched()
    other = CFG.build(None)
    other.on_item(_raw(event("product_view", user="u2", ts=at(0), product_id="sku-9")))
    assert other.state.cooldowns is NO_COOLDOWNS  # fired nothing: still the shared one


def test_a_snapshot_waits_in_the_users_own_list() -> None:
    state = JourneyState(user="u1", max_ts_ms=5 * DAY)
    state.profile = profiles.new_profile(0)
    take_snapshot(state, CFG, 3 * DAY)
    assert len(state.pending) == 1 and state.pending is not NO_PENDING
    _assert_untouched()


def test_a_merge_adds_into_the_customers_own_containers_and_gives_back_the_empty_ones() -> None:
    device = JourneyState(user="a1", max_ts_ms=500)
    device.profile = profiles.new_profile(100)
    device.sessions = [Session(100, 500)]
    device.pending = [Pending(200, b"x")]
    login = CFG.parser.parse(orjson.dumps(event("login", ts=at(10), anonymous_id="a1")), "t:1")
    customer = JourneyState(user="u1")
    merge_in(customer, CFG, Handoff("a1", device, login), [])
    assert [s.start_ms for s in customer.sessions] == [100] and customer.sessions is not device.sessions
    assert [p.ts_ms for p in customer.pending] == [200]
    assert customer.cooldowns is NO_COOLDOWNS  # nothing to merge: the shared one back
    _assert_untouched()


def test_a_replay_with_every_kind_of_event_leaves_the_shared_empties_empty(tmp_path: Path) -> None:
    config = GeneratorConfig(
        users=120, days=8, seed=16, anonymous_share=0.4, opt_out_share=0.2, forget_share=0.1, out_of_order_share=0.05
    )
    source = tmp_path / "events.jsonl"
    generate(config, source)
    replay([source], tmp_path / "out", settings(), workers=1, show_progress=False)
    assert (tmp_path / "out" / "triggers.jsonl").stat().st_size > 0
    assert (tmp_path / "out" / "sessions.jsonl").stat().st_size > 0
    _assert_untouched()
