"""The loop step without a dataflow: attribution in event time, holdouts, the bandit, snapshots."""

from __future__ import annotations

import random
from typing import Any

import pytest

from journeyflow.records import IdentityMerge, Trigger
from operators.goals import GoalEvent
from operators.loop import LoopConfig, LoopLogic
from operators.loop_records import Conversion, LoopReport
from operators.rules import parse_rules

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_785_000_000_000


def _config(extra: str = "", **kwargs: Any) -> LoopConfig:
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


def _trigger(user: str = "u1", ts: int = T0, rule: str = "cart", variant: str = "treatment", **kw: Any) -> Trigger:
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


def _purchase(user: str = "u1", ts: int = T0, value: float = 59.0, event_id: str | None = None, **fields: Any) -> GoalEvent:
    kind = fields.pop("type", "purchase")
    event_id = event_id or f"p-{user}-{ts}"
    return GoalEvent(user, ts, event_id, kind, value, {"event_id": event_id, "type": kind, "revenue": value, "campaign": None, **fields})


def _clock(ts: int) -> GoalEvent:
    """A purchase of somebody else: moves the step's event time on."""
    return _purchase("someone-else", ts)


def _feed(logic: LoopLogic, items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        emitted, _ = logic.on_item(item)
        out.extend(emitted)
    return out


def _conversions(out: list[Any]) -> list[Conversion]:
    return [x for x in out if isinstance(x, Conversion)]


def _report(logic: LoopLogic) -> LoopReport:
    (report,) = logic.on_eof()[0]
    return report


def test_two_purchases_in_the_window_give_one_conversion() -> None:
    logic = _config().build(None)
    out = _feed(
        logic,
        [_trigger(), _purchase(ts=T0 + HOUR, value=20.0), _purchase(ts=T0 + 2 * HOUR, value=30.0), _clock(T0 + 2 * DAY)],
    )
    (conversion,) = _conversions(out)
    assert conversion.trigger_id == "t-u1-1785000000000-cart"
    assert (conversion.variant, conversion.ts_ms, conversion.value) == ("treatment", T0 + HOUR, 20.0)
    assert conversion.cause_event_id == f"p-u1-{T0 + HOUR}"
    doc = _report(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 1 and doc["expired"] == 0


def test_a_purchase_after_the_window_gives_none_and_the_trigger_expires() -> None:
    logic = _config().build(None)
    out = _feed(logic, [_trigger(), _purchase(ts=T0 + DAY + 1), _purchase(user="u2", ts=T0 + 3 * DAY)])
    assert _conversions(out) == []
    doc = _report(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 0 and doc["expired"] == 1


def test_the_window_edge_counts_and_earlier_events_do_not() -> None:
    logic = _config().build(None)
    out = _feed(logic, [_purchase(ts=T0 - 1), _trigger(), _purchase(ts=T0 + DAY)])
    (conversion,) = _conversions(out)
    assert conversion.ts_ms == T0 + DAY


def test_the_event_that_caused_the_trigger_is_not_its_conversion() -> None:
    logic = _config().build(None)
    out = _feed(logic, [_purchase(ts=T0, event_id="e-cause"), _trigger(cause="e-cause")])
    assert _conversions(out) == []


def test_held_out_users_conversions_count_on_the_holdout_side() -> None:
    logic = _config().build(None)
    out = _feed(
        logic,
        [
            _trigger("u1", variant="holdout"),
            _trigger("u2"),
            _trigger("u3", variant="holdout"),
            _purchase("u1", T0 + HOUR, 40.0),
            _purchase("u2", T0 + HOUR, 10.0),
            _clock(T0 + 2 * DAY),
        ],
    )
    assert [(c.user_id, c.variant) for c in _conversions(out)] == [("u1", "holdout"), ("u2", "treatment")]
    # Held-out triggers go on, marked, for the holdouts output.
    assert [t.variant for t in out if isinstance(t, Trigger)] == ["holdout", "treatment", "holdout"]
    doc = _report(logic).uplift["cart"]
    assert doc["holdout"] | {"rate_ci95": None} == {
        "n": 2, "conversions": 1, "rate": 0.5, "rate_ci95": None, "revenue_per_user": 20.0, "expired": 1, "pending": 0
    }
    assert doc["treated"]["n"] == 1 and doc["uplift_abs"] == 0.5


def test_a_trigger_behind_the_purchase_that_followed_it_still_converts() -> None:
    # Segment-entry triggers come through the models: they can arrive after
    # the user's next purchase.
    logic = _config(reorder_ms=6 * HOUR).build(None)
    out = _feed(logic, [_purchase(ts=T0 + 2 * HOUR), _purchase(ts=T0 + 3 * HOUR), _trigger(ts=T0 + HOUR)])
    (conversion,) = _conversions(out)
    assert conversion.ts_ms == T0 + 2 * HOUR
    assert _report(logic).max_delay_s == 3600.0


def test_goal_events_older_than_the_reorder_margin_are_forgotten() -> None:
    logic = _config(reorder_ms=HOUR).build(None)
    _feed(logic, [_purchase("u1", T0), _purchase("u2", T0 + 3 * HOUR)])
    assert set(logic.state.recent) == {"u2"}
    assert _conversions(_feed(logic, [_trigger("u1", ts=T0 - 1)])) == []


def test_a_cel_goal_counts_only_a_click_on_the_sent_campaign() -> None:
    cfg = _config(
        """
[triggers.mail]
on = "event"
payload = { campaign = "'spring'" }
goal = { event_types = ["email_click"], window_s = 3600, when = "event.campaign == trigger.payload.campaign" }
"""
    )
    logic = cfg.build(None)
    out = _feed(
        logic,
        [
            _trigger(rule="mail", payload={"campaign": "spring"}),
            _purchase(ts=T0 + 1),
            _purchase(ts=T0 + 2, type="email_click", campaign="autumn"),
            _purchase(ts=T0 + 3, type="email_click", campaign="spring", value=0.0),
        ],
    )
    assert [(c.rule, c.ts_ms) for c in _conversions(out)] == [("mail", T0 + 3)]
    assert cfg.goal_types == {"purchase", "email_click"}


def test_pending_triggers_are_reported_apart() -> None:
    logic = _config().build(None)
    _feed(logic, [_trigger("u1"), _trigger("u2", ts=T0 + 2 * DAY), _purchase("u2", T0 + 2 * DAY + HOUR)])
    doc = _report(logic).uplift["cart"]
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
    logic = _config(VARIANTS).build(None)
    rng = random.Random(3)
    for i in range(400):
        ts = T0 + i * HOUR // 4
        logic.on_item(_offer(f"u{i % 37}", ts))
        if rng.random() < 0.3:
            logic.on_item(_purchase(f"u{rng.randrange(37)}", ts + 60_000))
        if i % 50 == 0:
            arms = logic.uplift("offer")["arms"]
            walked = _pending_by_walk(logic, "offer")
            assert walked, "some triggers must still be open"
            assert {arm: doc["pending"] for arm, doc in arms.items() if doc["pending"]} == walked
    # Matured triggers leave the counts: a day and more later, only the newest are open.
    assert sum(logic.state.pending["offer"].values()) == sum(_pending_by_walk(logic, "offer").values()) < 400


def test_a_snapshot_without_pending_counts_is_recounted() -> None:
    import pickle

    cfg = _config(VARIANTS)
    first = cfg.build(None)
    for i in range(20):
        first.on_item(_offer(f"u{i}", T0 + i * HOUR))
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

    cfg = _config(VARIANTS)
    first = cfg.build(None)
    for i in range(20):
        first.on_item(_offer(f"u{i}", T0 + i * HOUR))
    assert first.state.open, "some triggers must be open, so that _Open instances are in the snapshot"
    monkeypatch.setattr(loop_state.LoopState, "__module__", "operators.loop")
    monkeypatch.setattr(loop_state._Open, "__module__", "operators.loop")
    old = first.snapshot()
    monkeypatch.undo()
    assert b"operators.loop_state" not in old and b"operators.loop" in old
    resumed = cfg.build(old)
    assert resumed.snapshot() == first.snapshot()
    assert resumed.uplift("offer") == first.uplift("offer")

VARIANTS = """
[triggers.offer]
on = "session_close"
payload = { cart_value = "cart_value" }
variants = { plain = { text = "'come back'" }, discount = { text = "'10% off'", discount = "10" } }
holdout = 0.1
goal = { window_s = 86400 }
"""


def _offer(user: str, ts: int) -> Trigger:
    return _trigger(
        user,
        ts,
        rule="offer",
        options=(("plain", {"cart_value": 1.0, "text": "come back"}), ("discount", {"cart_value": 1.0, "text": "10% off", "discount": 10})),
    )


def _simulate(logic: LoopLogic, rates: dict[str, float], n: int, seed: int = 1) -> list[str]:
    """Fire ``n`` offers an hour apart; each chosen variant converts with its rate, 10 min later."""
    rng = random.Random(seed)
    chosen = []
    for i in range(n):
        ts = T0 + i * HOUR
        (trigger,) = [x for x in logic.on_item(_offer(f"u{i}", ts))[0] if isinstance(x, Trigger)]
        chosen.append(trigger.variant)
        if rng.random() < rates[trigger.variant]:
            logic.on_item(_purchase(f"u{i}", ts + 10 * 60_000))
    return chosen


def test_the_bandit_gives_the_better_variant_most_traffic() -> None:
    logic = _config(VARIANTS).build(None)
    chosen = _simulate(logic, {"plain": 0.05, "discount": 0.15}, 2000)
    assert set(chosen) == {"plain", "discount"}
    last = chosen[1000:]
    assert last.count("discount") / len(last) > 0.8
    report = _report(logic)
    arms = report.uplift["offer"]["arms"]
    assert arms["discount"]["share"] > 0.7
    assert report.bandits["offer"]["discount"]["mean"] > report.bandits["offer"]["plain"]["mean"]


def test_a_chosen_variant_names_its_own_payload() -> None:
    logic = _config(VARIANTS).build(None)
    (trigger,) = logic.on_item(_offer("u1", T0))[0]
    assert trigger.variant in ("plain", "discount") and trigger.options == ()
    assert trigger.payload["text"] == {"plain": "come back", "discount": "10% off"}[trigger.variant]


def test_choices_are_deterministic_and_survive_a_snapshot() -> None:
    cfg = _config(VARIANTS)
    rates = {"plain": 0.1, "discount": 0.2}
    whole = _simulate(cfg.build(None), rates, 600)
    first = cfg.build(None)
    head = _simulate(first, rates, 300)
    resumed = cfg.build(first.snapshot())
    assert resumed.snapshot() == first.snapshot()
    # The same simulated customers from offer 300 on: same rng draws as the whole run.
    rng = random.Random(1)
    for i in range(300):
        rng.random()
    tail = []
    for i in range(300, 600):
        ts = T0 + i * HOUR
        (trigger,) = [x for x in resumed.on_item(_offer(f"u{i}", ts))[0] if isinstance(x, Trigger)]
        tail.append(trigger.variant)
        if rng.random() < rates[trigger.variant]:
            resumed.on_item(_purchase(f"u{i}", ts + 10 * 60_000))
    assert head + tail == whole


def test_a_different_seed_makes_different_choices() -> None:
    rates = {"plain": 0.1, "discount": 0.1}
    assert _simulate(_config(VARIANTS, seed=1).build(None), rates, 200) != _simulate(
        _config(VARIANTS, seed=2).build(None), rates, 200
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('variants = { a = { x = "1" } }', "at least two"),
        ('variants = { holdout = { x = "1" }, b = { x = "2" } }', "not holdout/treatment"),
        ('goal = { event_types = ["forget"] }', "goal event_types must be"),
        ("goal = { window_s = 0 }", "goal window_s must be an integer"),
        ('goal = { when = "event.nope > 1" }', "goal"),
        ('goal = { when = "event.revenue" }', "must be a boolean condition"),
        ("goal = { horizon = 3 }", "unknown key(s) horizon"),
    ],
)
def test_bad_goals_and_variants_stop_start_up(extra: str, message: str) -> None:
    from journeyflow.errors import RuleError

    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config(f'\n[triggers.bad]\non = "event"\n{extra}\n')


def _login(device: str, customer: str, ts: int) -> IdentityMerge:
    return IdentityMerge(user_id=customer, anonymous_id=device, ts_ms=ts, cause_event_id=f"login-{device}")


def test_a_visitor_who_logs_in_and_buys_converts_as_the_customer() -> None:
    logic = _config().build(None)
    out = _feed(logic, [_trigger("anon-1", T0), _login("anon-1", "c1", T0 + HOUR), _purchase("c1", T0 + 2 * HOUR)])
    (conversion,) = _conversions(out)
    assert (conversion.user_id, conversion.trigger_id) == ("c1", f"t-anon-1-{T0}-cart")
    # The window still closes on time, under the customer: one trigger, one conversion.
    _feed(logic, [_clock(T0 + 3 * DAY)])
    doc = _report(logic).uplift["cart"]
    assert doc["treated"]["n"] == 1 and doc["treated"]["conversions"] == 1 and doc["expired"] == 0
    assert logic.state.open == {} and logic.state.moved == {}


def test_a_purchase_that_reaches_the_loop_before_the_login_still_counts() -> None:
    logic = _config().build(None)
    out = _feed(logic, [_trigger("anon-1", T0), _purchase("c1", T0 + 2 * HOUR), _login("anon-1", "c1", T0 + HOUR)])
    assert [c.user_id for c in _conversions(out)] == ["c1"]


def test_another_customers_purchase_or_an_unrelated_login_converts_nothing() -> None:
    logic = _config().build(None)
    out = _feed(
        logic,
        [_trigger("anon-1", T0), _login("anon-2", "c1", T0 + HOUR), _purchase("c1", T0 + 2 * HOUR)],
    )
    assert _conversions(out) == []
    _feed(logic, [_clock(T0 + 3 * DAY)])
    assert _report(logic).uplift["cart"]["expired"] == 1


def test_a_snapshot_from_before_moves_existed_resumes() -> None:
    logic = _config().build(None)
    _feed(logic, [_trigger("anon-1", T0)])
    del logic.state.moved
    resumed = _config().build(logic.snapshot())
    out = _feed(resumed, [_login("anon-1", "c1", T0 + HOUR), _purchase("c1", T0 + 2 * HOUR), _clock(T0 + 3 * DAY)])
    assert [c.user_id for c in _conversions(out)] == ["c1"]
