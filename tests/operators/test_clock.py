"""The user's clock part: lateness, the wall-clock offset, timers."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import orjson

from flows.step_configs import journey_config
from operators import clock, dedup
from operators.journey_state import JourneyState
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
MIN = 60_000


def test_an_event_behind_the_watermark_is_late_and_one_within_the_lateness_is_not() -> None:
    state = JourneyState()
    assert not clock.is_late(state, CFG, 0)  # no clock yet: nothing is late
    clock.advance(state, CFG, 100 * MIN)
    assert not clock.is_late(state, CFG, 100 * MIN - CFG.lateness_ms)
    assert clock.is_late(state, CFG, 100 * MIN - CFG.lateness_ms - 1)


def test_a_late_letter_says_how_far_behind_and_keeps_the_raw_line() -> None:
    doc = event("page_view", ts=at(0))
    parsed = CFG.parser.parse(orjson.dumps(doc), "t:1")
    letter = clock.late_letter(CFG, parsed, parsed.ts_ms + 20 * MIN)
    assert letter.code == "late" and "1200s behind" in letter.reason and "allowed 600s" in letter.reason
    assert letter.raw == parsed.raw


def test_live_the_offset_maps_the_users_event_time_to_the_wall_clock() -> None:
    wall = 1_900_000_000_000
    cfg = dataclasses.replace(CFG, timers=True, now_ms=lambda: wall)
    state = JourneyState()
    clock.advance(state, cfg, 1_000 * MIN)
    assert state.max_ts_ms == 1_000 * MIN and state.offset_ms == wall - 1_000 * MIN
    assert clock.timer_at(state, CFG, 0) is None  # replays set no timers
    # Nothing but the clock: no session, no profile, so nothing is ever due.
    assert clock.timer_at(state, cfg, 0) is None


def test_a_timer_is_never_set_sooner_than_a_second_after_the_last() -> None:
    cfg = dataclasses.replace(CFG, timers=True, now_ms=lambda: 0)
    state = JourneyState(max_ts_ms=0, offset_ms=0)
    dedup.remember(state.dedup, CFG.dedup, dedup.id_key("e1"), 0)  # the id leaves the dedup window: something is due
    due = clock.timer_at(state, cfg, 0)
    assert due == datetime.fromtimestamp((cfg.dedup.window_ms + 1) / 1000, timezone.utc)
    late = clock.timer_at(state, cfg, cfg.dedup.window_ms + 50_000)
    assert late == datetime.fromtimestamp((cfg.dedup.window_ms + 51_000) / 1000, timezone.utc)
