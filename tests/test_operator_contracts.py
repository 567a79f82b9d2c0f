"""Checks every stateful operator passes, written once (like River's estimator checks).

Each Logic class is built from an example configuration, then: its snapshot
round-trips through serde unchanged (and the items fed changed it, so a
restore that forgot everything would fail), it discards a key left with
nothing to remember (per-user steps), and it asks for a timer while something
is pending and for none when nothing is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from bytewax.operators import StatefulLogic

from flows.step_configs import audience_config, journey_config, model_config
from journeyflow.records import Trigger
from journeyflow.step_records import RawRecord, UserUpdate
from operators.labels import Example
from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig
from operators.recommend_steps import build_catalog, build_lists
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
RULES = load_rules(SETTINGS.rules_path)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[bytes | None], StatefulLogic]
    feed: list[Any]
    """Items that leave the logic with state worth a snapshot."""
    nothing: Any | None
    """An item that leaves a new key with nothing to keep (None: a global step)."""
    same: Callable[[StatefulLogic, StatefulLogic], bool] | None = None
    """How to tell two logics hold the same state (default: equal snapshot bytes)."""
    timers: bool = False
    """The logic schedules timers: ``notify_at`` is set after ``feed``, and not after ``nothing``."""


def _raw(doc: dict[str, Any]) -> RawRecord:
    return RawRecord(orjson.dumps(doc), "events/0@1", doc["user_id"])


def _examples() -> tuple[Example, ...]:
    from operators.features import CLASSIFIER_FEATURES, PRIOR_STATS, pack

    found = []
    for n in range(600):
        # Prior stats must be valid BG/NBD figures (days): repeats, last one, age.
        x = pack({name: (n % 7) / 7 + i / 100 for i, name in enumerate(CLASSIFIER_FEATURES + PRIOR_STATS)})
        found += [Example("churn", n, x, n % 3 == 0), Example("propensity", n, x, n % 2 == 0)]
    return tuple(found)


EXAMPLES = _examples()

CASES = [
    Case(
        "journey",
        journey_config(SETTINGS, RULES, timers=True, store_rows=True).build,
        [_raw(event("product_view", ts=at(0))), _raw(event("purchase", ts=at(1)))],
        RawRecord(b"not json", "events/0@2", "u1"),
        timers=True,
    ),
    Case(
        "audience",
        audience_config(RULES).build,
        [UserUpdate("u1", 0, "update", "event", "e1", ("loyal",), {"purchases_30d": 6})],
        UserUpdate("u1", 0, "update", "event", "e1", (), {}),
    ),
    Case(
        "models",
        model_config(SETTINGS).build,
        # Labelled examples, so the model learns and its state differs from a new one's.
        [UserUpdate("u1", 0, "update", "event", "e1", (), {}, examples=EXAMPLES)],
        None,
        # River objects re-pickle to different bytes; equal state means equal
        # reports and equal scores.
        lambda a, b: a.report() == b.report() and _probe(a) == _probe(b),
    ),
]


def _anonymous(kind: str, minutes: float) -> Any:
    from journeyflow.events import Event

    doc = event(kind, ts=at(minutes), anonymous_id="a1")
    parsed = journey_config(SETTINGS, RULES, timers=True).parser.parse(orjson.dumps(doc), "events/0@1")
    assert isinstance(parsed, Event)
    return parsed._replace(user="a1", user_id=None, anonymous_id="a1")


def _devices_case() -> Case:
    from journeyflow.step_records import Tick
    from operators.identity import DeviceConfig

    cfg = DeviceConfig(journey_config(SETTINGS, RULES, timers=True), link_idle_ms=86_400_000)
    login = _anonymous("login", 2)._replace(user="u1", user_id="u1")
    # An anonymous visit, then the login that links the device (it keeps only the link).
    return Case("devices", cfg.build, [_anonymous("product_view", 0), login], Tick(0, "u9"), timers=True)


CASES.append(_devices_case())


def _loop_case() -> Case:
    from flows.loop import loop_config
    from journeyflow.records import Trigger
    from operators.goals import GoalEvent

    trigger = Trigger("t1", "cart_abandonment", "u1", 0, "e1", "treatment", {})
    purchase = GoalEvent("u1", 1, "e2", "purchase", 5.0, {"type": "purchase"})
    return Case("loop", loop_config(SETTINGS, RULES).build, [trigger, purchase], None)


CASES.append(_loop_case())


_REC = RecommendConfig()
_ASK = RecAsk("u1", 0, "view", "b", "shoes", ("a",), ())
CASES += [
    Case("rec_catalog", build_catalog(_REC), [[_ASK]], None),
    Case(
        "rec_lists",
        build_lists(_REC),
        [RecAnswer(_ASK, Found(("c",), (1.0,), 1.0), ("a",), ("a",), None)],
        Trigger("t", "r", "u1", 0, None, "treatment", {}),
    ),
]


def _probe(logic: StatefulLogic) -> dict[str, Any]:
    from operators.features import CLASSIFIER_FEATURES, PRIOR_STATS, pack_rows

    vector = dict.fromkeys(CLASSIFIER_FEATURES + PRIOR_STATS, 0.5)
    update = UserUpdate("p", 0, "update", "event", None, (), {}, features=pack_rows((vector,) * 5))
    return logic.on_item(update)[0][0].scores


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_snapshot_round_trips_unchanged(case: Case) -> None:
    logic = case.build(None)
    for item in case.feed:
        logic.on_item(item)
    first = logic.snapshot()
    assert isinstance(first, bytes)
    fresh = case.build(None)
    if case.same is None:
        assert fresh.snapshot() != first, "the items fed must change the state"
    else:
        assert not case.same(logic, fresh), "the items fed must change the state"
    restored = case.build(first)
    if case.same is None:
        assert restored.snapshot() == first
    else:
        assert case.same(logic, restored)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_key_with_nothing_to_keep_is_discarded(case: Case) -> None:
    if case.nothing is None:
        pytest.skip("a global step keeps its one key for the life of the flow")
    _, discard = case.build(None).on_item(case.nothing)
    assert discard is StatefulLogic.DISCARD


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_timer_while_something_is_pending_and_none_after(case: Case) -> None:
    logic = case.build(None)
    assert logic.notify_at() is None
    for item in case.feed:
        logic.on_item(item)
    if not case.timers:
        assert logic.notify_at() is None
        return
    assert logic.notify_at() is not None
    if case.nothing is not None:
        idle = case.build(None)
        idle.on_item(case.nothing)
        assert idle.notify_at() is None
