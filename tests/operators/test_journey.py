"""The per-user step, driven directly: timers on an injected clock, consent, erasure, tallies."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from bytewax.operators import StatefulLogic

from flows.step_configs import journey_config
from journeyflow.events import DeadLetter
from journeyflow.step_records import RawRecord, Tally, UserUpdate
from operators.journey import JourneyConfig
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
RULES = load_rules(SETTINGS.rules_path)
MIN = 60_000


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def _config(clock: Clock | None = None, timers: bool = False) -> JourneyConfig:
    cfg = journey_config(SETTINGS, RULES, timers=timers)
    return dataclasses.replace(cfg, now_ms=clock) if clock else cfg


def _raw(doc: dict[str, Any]) -> RawRecord:
    return RawRecord(orjson.dumps(doc), "events/0@1", doc["user_id"])


def _of(out: Any, kind: type) -> list[Any]:
    return [o for o in out if isinstance(o, kind)]


def test_replays_ask_for_no_timers() -> None:
    logic = _config().build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    assert logic.notify_at() is None


def _parse(doc: dict[str, Any]) -> Any:
    return _config().parser.parse(orjson.dumps(doc), "t:1")


def test_a_message_keyed_for_another_user_is_a_dead_letter() -> None:
    logic = _config().build(None)
    record = RawRecord(orjson.dumps(event("page_view", user="ann")), "events/1@9", "bob")
    out, discard = logic.on_item(record)
    (dead,) = _of(out, DeadLetter)
    assert dead.code == "key_mismatch" and dead.source == "events/1@9"
    assert discard is StatefulLogic.DISCARD


def test_forget_erases_everything_and_reports_the_counts() -> None:
    logic = _config().build(None)
    logic.on_item(_raw(event("product_view", ts=at(0))))
    out, discard = logic.on_item(_raw(event("forget", ts=at(1))))
    (update,) = _of(out, UserUpdate)
    (tally,) = _of(out, Tally)
    assert update.kind == "erase" and tally.processed == 2
    assert discard is StatefulLogic.DISCARD
    assert logic.state.profile is None and not logic.state.sessions and not logic.state.dedup.ids


def test_a_refusal_keeps_only_the_refusal_and_is_honoured_after_an_erasure() -> None:
    logic = _config().build(None)
    logic.on_item(_raw(event("page_view", ts=at(0))))
    refuse = {"consent": {"personalization": False}}
    out, discard = logic.on_item(_raw(event("consent", ts=at(1), context=refuse)))
    assert [u.kind for u in _of(out, UserUpdate)] == ["opt_out"]
    assert discard is StatefulLogic.RETAIN and logic.state.opted_out and logic.state.profile is None
    logic.on_item(_raw(event("forget", ts=at(2))))
    out, _ = logic.on_item(_raw(event("purchase", ts=at(3))))
    assert out == [] and logic.state.profile is None
