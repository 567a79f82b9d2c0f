"""The loop step's snapshot layout (operators/loop_codec.py): a resumed step continues exactly
as the one that never stopped, from this layout and from the former one (the state pickled whole)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from journeyflow.errors import StateSerializationError
from journeyflow.records import IdentityMerge
from operators.loop import LoopConfig, LoopLogic
from operators.loop_codec import MAGIC, decode
from state.serde import encode_state
from tests.operators.loop_helpers import HOUR, T0, VARIANTS, feed, make_offer, make_purchase, make_trigger

CLICK = """
[triggers.mail]
on = "session_close"
payload = { campaign = "'spring'" }
goal = { event_types = ["email_click"], window_s = 7200, when = "event.campaign == trigger.payload.campaign" }
"""


def _config() -> LoopConfig:
    from tests.operators.loop_helpers import loop_config

    return loop_config(VARIANTS + CLICK, reorder_ms=2 * HOUR, max_goal_events=2)


def _history(seed: int, n: int = 400) -> list[Any]:
    """Triggers of three rules (one with variants and a holdout, one with a CEL goal), purchases,
    clicks and logins of devices, over about four days: triggers open, convert, move and mature."""
    rng = random.Random(seed)
    items: list[Any] = []
    ts = T0
    for i in range(n):
        ts += rng.randrange(0, HOUR // 2)
        user = rng.choice([f"u{k}" for k in range(12)] + [f"anon-{k}" for k in range(4)])
        roll = rng.random()
        if roll < 0.03:
            items.append(make_trigger(user, ts, rule="offer", variant="holdout", trigger_id=f"held-{i}", payload={"cart_value": 1.0}))
        elif roll < 0.3:
            items.append(make_offer(user, ts))
        elif roll < 0.45:
            items.append(make_trigger(user, ts, trigger_id=f"cart-{i}", payload={"cart_value": float(i), "items": [i, "x"]}))
        elif roll < 0.55:
            items.append(make_trigger(user, ts, rule="mail", trigger_id=f"mail-{i}", payload={"campaign": "spring"}))
        elif roll < 0.8:
            # Sometimes behind the step's latest event time: goal events are kept for the reorder margin.
            items.append(make_purchase(user, ts - rng.randrange(0, HOUR), value=float(i % 50), event_id=f"buy-{i}"))
        elif roll < 0.9:
            items.append(make_purchase(user, ts, event_id=f"click-{i}", type="email_click", campaign=rng.choice(["spring", "fall"])))
        elif user.startswith("anon-"):
            items.append(IdentityMerge(user_id=f"u{rng.randrange(12)}", anonymous_id=user, ts_ms=ts, cause_event_id=f"login-{i}"))
    return items


def _view(blob: bytes) -> tuple[Any, ...]:
    """Return what the snapshot ``blob`` holds, as plain values (not the bytes: the numbering of
    shapes and field names, and pickle's sharing of equal strings, may differ between equal states)."""
    s, _ = decode(blob)
    opened = [(user, [(f.trigger_id, f.rule, f.arm, f.user, f.ts_ms, f.cause_event_id, f.payload, f.converted, f.value) for f in fs])
              for user, fs in s.open.items()]
    bandits = {rule: {arm: (b.alpha, b.beta, b._rng.getstate()) for arm, b in p._rewards.items()} for rule, p in s.bandits.items()}
    return (opened, sorted(s.due), list(s.recent.items()), list(s.recent_order), s.watermark_ms, s.end_ms, s.seq,
            s.tallies, s.pending, s.moved, s.conversions, s.max_delay_ms, bandits)


def _continue(logic: LoopLogic, items: list[Any]) -> tuple[list[Any], Any, tuple[Any, ...]]:
    """Return what ``logic`` emits on ``items`` and at the end, and what its snapshot then holds."""
    out = feed(logic, items)
    (report,) = logic.on_eof()[0]
    return out, report, _view(logic.snapshot())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_step_resumed_from_its_snapshot_continues_as_the_one_that_never_stopped(seed: int) -> None:
    cfg = _config()
    items = _history(seed)
    for cut in (0, 37, 150, 251, len(items)):
        first = cfg.build(None)
        feed(first, items[:cut])
        blob = first.snapshot()
        assert blob.startswith(MAGIC)
        resumed = cfg.build(blob)
        assert resumed.snapshot() == blob, "a decoded snapshot must encode to the same bytes"
        assert _view(blob) == _view(encode_state(first.state)), "the snapshot must hold the whole state"
        assert _continue(resumed, items[cut:]) == _continue(first, items[cut:])


def test_the_history_exercises_what_the_snapshot_must_carry() -> None:
    # Guards the test above against a history too tame to catch a lost field.
    cfg = _config()
    logic = cfg.build(None)
    items = _history(1)
    out = feed(logic, items[:251])
    assert logic.state.moved, "some open triggers must have passed to a customer"
    assert any(f.converted for fs in logic.state.open.values() for f in fs), "some open triggers must have converted"
    assert logic.state.recent and logic.state.bandits and logic.state.tallies
    assert any(getattr(x, "variant", None) == "holdout" for x in out)


def test_a_snapshot_of_the_former_layout_resumes_the_same() -> None:
    cfg = _config()
    items = _history(4)
    first = cfg.build(None)
    feed(first, items[:200])
    resumed = cfg.build(encode_state(first.state))  # the former layout: the state pickled whole
    assert _view(resumed.snapshot()) == _view(first.snapshot())
    assert _continue(resumed, items[200:]) == _continue(first, items[200:])


def test_the_open_triggers_are_rows_not_pickled_objects() -> None:
    cfg = _config()
    logic = cfg.build(None)
    feed(logic, [make_trigger(f"u{i}", T0 + i, trigger_id=f"t{i}") for i in range(50)])
    blob = logic.snapshot()
    assert b"_Open" not in blob and b"GoalEvent" not in blob
    assert blob.count(b"\n") >= 50


@pytest.mark.parametrize("cut", [5, 30, -3])
def test_a_damaged_snapshot_raises_a_clear_error(cut: int) -> None:
    cfg = _config()
    logic = cfg.build(None)
    feed(logic, _history(5, 60))
    blob = logic.snapshot()
    with pytest.raises(StateSerializationError, match="cannot decode"):
        cfg.build(blob[:cut])
