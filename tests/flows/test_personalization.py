"""Profiles, segments and triggers: the worked examples of the rules, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import at, event, run_replay, settings


def _entered(result, segment: str) -> list[dict]:
    return [c for c in result.segment_changes if segment in c["entered"]]


def test_four_views_within_a_day_give_one_product_interest_and_highly_engaged(tmp_path: Path) -> None:
    views = [event("product_view", ts=at(hours=h), product_id="bag-7") for h in (0, 5, 10, 20, 21)]
    result = run_replay(tmp_path, views)
    (trigger,) = [t for t in result.triggers if t["rule"] == "product_interest"]
    assert trigger["cause_event_id"] == views[3]["event_id"]  # the fourth view
    assert trigger["payload"]["product_id"] == "bag-7"
    assert trigger["payload"]["views_24h"] == 4
    assert trigger["variant"] == "treatment" and len(trigger["trigger_id"]) == 32
    (entry,) = _entered(result, "highly_engaged")
    assert entry["cause_event_id"] == views[3]["event_id"]
    assert entry["ts"] == views[3]["ts"]


def test_four_views_over_thirty_hours_give_neither(tmp_path: Path) -> None:
    views = [event("product_view", ts=at(hours=h), product_id="bag-7") for h in (0, 10, 20, 30)]
    result = run_replay(tmp_path, views)
    assert [t for t in result.triggers if t["rule"] == "product_interest"] == []
    assert _entered(result, "highly_engaged") == []


def test_a_bought_product_does_not_trigger_product_interest(tmp_path: Path) -> None:
    events = [
        event("purchase", ts=at(0), revenue=59.0, items=[{"product_id": "bag-7", "price": 59.0}]),
        *[event("product_view", ts=at(minutes=10 * n + 5), product_id="bag-7") for n in range(5)],
    ]
    result = run_replay(tmp_path, events)
    assert [t for t in result.triggers if t["rule"] == "product_interest"] == []


def test_a_cart_left_behind_triggers_cart_abandonment_when_the_session_closes(tmp_path: Path) -> None:
    left = [
        event("product_view", user="ann", ts=at(0), product_id="sku-7"),
        event("add_to_cart", user="ann", ts=at(2), product_id="sku-7", price=59.0),
        event("page_view", user="ann", ts=at(5)),
        event("page_view", user="ann", ts=at(hours=3)),  # the next visit: the first session closed
    ]
    bought = [
        event("add_to_cart", user="bob", ts=at(0), product_id="sku-9", price=20.0),
        event("purchase", user="bob", ts=at(3), revenue=20.0, items=[{"product_id": "sku-9", "price": 20.0}]),
    ]
    result = run_replay(tmp_path, sorted(left + bought, key=lambda e: e["ts"]))
    abandoned = [t for t in result.triggers if t["rule"] == "cart_abandonment"]
    assert len(abandoned) == 1
    (trigger,) = abandoned
    assert trigger["user_id"] == "ann"
    assert trigger["payload"] == {"products": ["sku-7"], "cart_value": 59.0}
    assert trigger["cause_event_id"] == left[2]["event_id"]  # the session's last event
    assert trigger["ts"] == at(35)  # the session's end plus the 30-minute gap


def test_the_sixth_purchase_within_thirty_days_enters_loyal_and_welcomes_a_vip(tmp_path: Path) -> None:
    purchases = [event("purchase", ts=at(days=d * 4)) for d in range(6)]
    result = run_replay(tmp_path, purchases)
    (entry,) = _entered(result, "loyal")
    assert entry["cause_event_id"] == purchases[5]["event_id"]
    assert entry["profile"]["frequency_30d"] == 6
    (welcome,) = [t for t in result.triggers if t["rule"] == "vip_welcome"]
    assert welcome["cause_event_id"] == purchases[5]["event_id"]
    assert welcome["payload"] == {"segment": "loyal", "purchases_30d": 6}


def test_five_purchases_are_not_loyal(tmp_path: Path) -> None:
    result = run_replay(tmp_path, [event("purchase", ts=at(days=d * 5)) for d in range(5)])
    assert _entered(result, "loyal") == []


def test_an_opted_out_user_gets_nothing(tmp_path: Path) -> None:
    refuse = {"consent": {"personalization": False, "marketing": False}}
    events = [
        event("consent", user="ann", ts=at(0), context=refuse),
        *[event("product_view", user="ann", ts=at(n), product_id="bag") for n in range(1, 6)],
        event("add_to_cart", user="ann", ts=at(7)),
        *[event("purchase", user="ann", ts=at(10 + n)) for n in range(7)],
    ]
    result = run_replay(tmp_path, events)
    assert result.segment_changes == [] and result.triggers == [] and result.sessions == []
    assert result.profiles == []
    assert result.summary["skipped_no_consent"] == len(events)
    assert result.summary["read"] == result.summary["processed"]


def test_an_opt_out_drops_the_profile_and_leaves_every_segment(tmp_path: Path) -> None:
    events = [
        event("page_view", user="ann", ts=at(0)),
        event("consent", user="ann", ts=at(1), context={"consent": {"personalization": False}}),
        event("page_view", user="ann", ts=at(2)),
        event("consent", user="ann", ts=at(3), context={"consent": {"personalization": True}}),
        event("page_view", user="ann", ts=at(hours=5)),
    ]
    result = run_replay(tmp_path, events)
    changes = [(c["entered"], c["exited"], c["cause"]) for c in result.segment_changes]
    assert changes[:2] == [(["new_visitor"], [], "event"), ([], ["new_visitor"], "consent")]
    (profile,) = result.profiles
    assert profile["events_total"] == 1  # only what came after consent was given again


def test_an_erased_user_has_no_profile_and_a_tombstone(tmp_path: Path) -> None:
    events = [
        event("product_view", user="ann", ts=at(0), traits={"email": "ann@example.com"}),
        event("add_to_cart", user="ann", ts=at(1)),
        event("forget", user="ann", ts=at(2)),
        event("page_view", user="bob", ts=at(3)),
    ]
    result = run_replay(tmp_path, events)
    assert [p["user_id"] for p in result.profiles] == ["bob"]
    tombstones = [c for c in result.segment_changes if c["kind"] == "tombstone"]
    assert [(t["user_id"], t["cause_event_id"]) for t in tombstones] == [("ann", events[2]["event_id"])]
    assert not any(s["user_id"] == "ann" for s in result.sessions)  # the open session went with it
    assert [t for t in result.triggers if t["user_id"] == "ann"] == []


def test_no_personal_data_reaches_any_output(tmp_path: Path) -> None:
    traits = {"email": "ann@example.com", "phone": "+4930123456"}
    events = [
        event("identify", user="ann", anonymous_id="anon-1", ts=at(0), traits=traits),
        event("product_view", user="ann", ts=at(1), traits=traits),
        event("page_view", user="ann", traits=traits),  # a duplicate timestamp, fine
        event("purchase", user="ann", ts=at(3), traits=traits, revenue=-1.0),  # dead letter
        event("page_view", user="ann", ts=at(hours=2), traits=traits),
        event("page_view", user="ann", ts=at(1), traits=traits),  # late dead letter
    ]
    result = run_replay(tmp_path, events)
    assert result.summary["dead_letters"] == 2
    for path in result.out.iterdir():
        text = path.read_bytes()
        assert b"ann@example.com" not in text, path.name
        assert b"4930123456" not in text, path.name
    (profile,) = result.profiles
    assert len(profile["traits_email_hash"]) == 32


def test_replaying_twice_gives_identical_triggers_and_segment_changes(tmp_path: Path) -> None:
    events = [event("product_view", user=f"u{n % 7}", ts=at(n * 13), product_id=f"p{n % 3}") for n in range(200)]
    events += [event("purchase", user=f"u{n % 7}", ts=at(n * 97)) for n in range(30)]
    events.sort(key=lambda e: e["ts"])
    first = run_replay(tmp_path, events, name="a.jsonl")
    second = run_replay(tmp_path, events, name="b.jsonl")
    assert first.triggers and first.segment_changes
    assert (first.out / "triggers.jsonl").read_bytes() == (second.out / "triggers.jsonl").read_bytes()
    assert (first.out / "segment_changes.jsonl").read_bytes() == (
        second.out / "segment_changes.jsonl"
    ).read_bytes()


def test_time_alone_enters_re_engagement_by_the_end_of_the_replay(tmp_path: Path) -> None:
    events = [
        event("purchase", user="quiet", ts=at(0)),
        event("page_view", user="other", ts=at(days=70)),  # the replay's last event time
    ]
    result = run_replay(tmp_path, events)
    (entry,) = _entered(result, "re_engagement_target")
    assert entry["user_id"] == "quiet" and entry["cause"] == "time" and entry["cause_event_id"] is None
    assert entry["ts"] == at(days=70)
    quiet = next(p for p in result.profiles if p["user_id"] == "quiet")
    assert "re_engagement_target" in quiet["segments"] and "infrequent_buyer" not in quiet["segments"]
    assert quiet["recency_days"] == 70.0


def test_a_returning_user_first_enters_by_time_then_leaves_by_buying(tmp_path: Path) -> None:
    events = [event("purchase", ts=at(0)), event("purchase", ts=at(days=65))]
    result = run_replay(tmp_path, events)
    target = "re_engagement_target"
    moves = [
        ("entered" if target in c["entered"] else "exited", c["cause"], c["ts"])
        for c in result.segment_changes
        if target in c["entered"] + c["exited"]
    ]
    assert moves == [("entered", "time", at(days=65)), ("exited", "event", at(days=65))]


def test_holdout_users_get_no_trigger_but_a_holdout_record(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[triggers.everything]\non = "event"\nwhen = "true"\nholdout = 1.0\npayload = { kind = "event.type" }\n'
    )
    cfg = settings(segments={"rules_file": str(rules)})
    result = run_replay(tmp_path, [event("page_view", ts=at(n)) for n in range(3)], cfg=cfg)
    assert result.triggers == []
    assert [h["variant"] for h in result.holdouts] == ["holdout"] * 3
    assert [h["payload"] for h in result.holdouts] == [{"kind": "page_view"}] * 3


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('[segments.x]\nwhen = "purchases > 1"', "segment 'x': unknown variable(s) purchases"),
        ('[segments.x]\nwhen = "purchases_total >"', "segment 'x': does not compile"),
        ('[segments.x]\nwhen = "purchases_total + 1"', "segment 'x': must be a boolean condition"),
        ('[triggers.t]\non = "tuesday"', "trigger 't': on must be one of event, session_close, segment_entry"),
        ('[triggers.t]\non = "segment_entry"\nsegment = "nope"', "trigger 't': segment must name a segment"),
        ('[triggers.t]\non = "event"\nwhen = "churn_risk > 0.5"', "unknown variable(s) churn_risk"),
        ('[triggers.t]\non = "event"\nholdout = 2', "trigger 't': holdout must be a number in [0.0, 1.0]"),
        ('[triggers."a|b"]\non = "event"', "trigger name must be 1..64 letters, digits"),
    ],
)
def test_invalid_rules_fail_at_start_up_with_the_rule_and_the_problem(tmp_path: Path, rules: str, message: str) -> None:
    from journeyflow.errors import RuleError
    from operators.rules import load_rules

    path = tmp_path / "rules.toml"
    path.write_text(rules)
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_rules(path)
