"""Builders shared by the loop step's tests (test_loop*.py): configs, triggers, goal events."""

from __future__ import annotations

from typing import Any

from journeyflow.records import Trigger
from operators.goals import GoalEvent
from operators.loop import LoopConfig, LoopLogic
from operators.loop_records import Conversion, LoopReport
from operators.rules import parse_rules

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_785_000_000_000


def loop_config(extra: str = "", **kwargs: Any) -> LoopConfig:
    import tomllib

    doc = tomllib.loads(
        """
[triggers.cart]
on = "session_close"
holdout = 0.0
payload = { cart_value = "cart_value" }
goal = { window_s = 86400 }
"""
        + extra
    )
    rules = parse_rules(doc)
    return LoopConfig(rules={r.name: r for r in rules.triggers}, reorder_ms=kwargs.pop("reorder_ms", HOUR), **kwargs)


def make_trigger(user: str = "u1", ts: int = T0, rule: str = "cart", variant: str = "treatment", **kw: Any) -> Trigger:
    return Trigger(
        trigger_id=kw.pop("trigger_id", f"t-{user}-{ts}-{rule}"),
        rule=rule,
        user_id=user,
        ts_ms=ts,
        cause_event_id=kw.pop("cause", "e-cause"),
        variant=variant,
        payload=kw.pop("payload", {"cart_value": 10.0}),
        options=kw.pop("options", ()),
    )


def make_purchase(user: str = "u1", ts: int = T0, value: float = 59.0, event_id: str | None = None, **fields: Any) -> GoalEvent:
    kind = fields.pop("type", "purchase")
    event_id = event_id or f"p-{user}-{ts}"
    return GoalEvent(user, ts, event_id, kind, value, {"event_id": event_id, "type": kind, "revenue": value, "campaign": None, **fields})


def clock_event(ts: int) -> GoalEvent:
    """A purchase of somebody else: moves the step's event time on."""
    return make_purchase("someone-else", ts)


def feed(logic: LoopLogic, items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        emitted, _ = logic.on_item(item)
        out.extend(emitted)
    return out


def conversions_in(out: list[Any]) -> list[Conversion]:
    return [x for x in out if isinstance(x, Conversion)]


def report_of(logic: LoopLogic) -> LoopReport:
    (report,) = logic.on_eof()[0]
    return report


VARIANTS = """
[triggers.offer]
on = "session_close"
payload = { cart_value = "cart_value" }
variants = { plain = { text = "'come back'" }, discount = { text = "'10% off'", discount = "10" } }
holdout = 0.1
goal = { window_s = 86400 }
"""


def make_offer(user: str, ts: int) -> Trigger:
    return make_trigger(
        user,
        ts,
        rule="offer",
        options=(("plain", {"cart_value": 1.0, "text": "come back"}), ("discount", {"cart_value": 1.0, "text": "10% off", "discount": 10})),
    )
