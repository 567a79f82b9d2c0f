"""Recommendations through the whole dataflow: profiles, segment changes, Redis, summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.redis_sink import StoreSink
from flows.replay import replay
from state.redis_store import RedisStore
from tests.helpers import at, event, run_replay, settings, write_events

_NO = {"consent": {"personalization": False, "marketing": False}}


def _history() -> list[dict[str, Any]]:
    """Shoppers who look at sku-a, then sku-b, then sku-c, in sessions of their own; then
    over a thousand page views, so that what follows is read in a later batch.

    Within one batch of the replay's input, bytewax hands the next step each
    user's records in key order rather than in time order.
    """
    events = []
    for n in range(6):
        for step, product in enumerate(("sku-a", "sku-b", "sku-c")):
            events.append(event("product_view", user=f"s{n}", ts=at(n * 60 + step), product_id=product))
    url = "https://shop.example.com/"
    events.extend(event("page_view", user=f"f{n % 50}", ts=at(400 + n * 0.1), url=url) for n in range(1100))
    return events


def test_profiles_and_segment_changes_carry_the_list(tmp_path: Path) -> None:
    events = _history()
    events.append(event("product_view", user="u1", ts=at(hours=12), product_id="sku-a"))
    events.append(event("add_to_cart", user="u1", ts=at(hours=12, minutes=1), product_id="sku-b"))
    events.append(event("page_view", user="browser", ts=at(hours=12), url="https://shop.example.com/"))
    out = run_replay(tmp_path, events)
    profiles = {p["user_id"]: p for p in out.profiles}
    # sku-b follows sku-a, but it is in the cart now: sku-c comes first.
    assert profiles["u1"]["recommendations"][0] == "sku-c"
    assert "sku-b" not in profiles["u1"]["recommendations"]
    assert len(profiles["u1"]["recommendations"]) <= 10
    assert profiles["browser"]["recommendations"] == []
    changes = [c for c in out.segment_changes if c["kind"] == "segment_change"]
    assert changes and all(isinstance(c["profile"]["recommendations"], list) for c in changes)
    quality = out.summary["recommendations"]
    assert set(quality) == {"online", "popularity"}
    assert set(quality["online"]) == {"hit_rate_10", "mrr_10", "hit_rate_20", "mrr_20", "evaluated"}
    # s1..s5 each view sku-b then sku-c after lists learned from the shoppers before them.
    assert quality["online"]["evaluated"] >= 10 and quality["online"]["hit_rate_10"] > 0.5


def test_the_size_setting_and_an_opted_out_customer(tmp_path: Path) -> None:
    events = _history()
    events.append(event("consent", user="no", ts=at(hours=11), context=_NO))
    events.append(event("product_view", user="no", ts=at(hours=12), product_id="sku-a"))
    events.append(event("product_view", user="no", ts=at(hours=12, minutes=1), product_id="sku-x"))
    events.append(event("product_view", user="u2", ts=at(hours=13), product_id="sku-a"))
    cfg = settings(recommendations={"size": 1})
    out = run_replay(tmp_path, events, cfg=cfg)
    profiles = {p["user_id"]: p for p in out.profiles}
    assert "no" not in profiles
    assert profiles["u2"]["recommendations"] == ["sku-b"]
    # The opted-out customer taught nothing: sku-x follows nothing.
    assert all("sku-x" not in p["recommendations"] for p in profiles.values())


def test_a_forget_leaves_no_list(tmp_path: Path) -> None:
    events = _history()
    events.append(event("product_view", user="gone", ts=at(hours=12), product_id="sku-a"))
    events.append(event("forget", user="gone", ts=at(hours=12, minutes=5)))
    out = run_replay(tmp_path, events)
    assert "gone" not in {p["user_id"] for p in out.profiles}
    assert [t for t in out.segment_changes if t["kind"] == "tombstone" and t["user_id"] == "gone"]


def test_the_recommender_can_be_off(tmp_path: Path) -> None:
    events = [*_history(), event("product_view", user="u1", ts=at(hours=12), product_id="sku-a")]
    out = run_replay(tmp_path, events, cfg=settings(recommendations={"enabled": False}))
    assert all("recommendations" not in p for p in out.profiles)
    assert "recommendations" not in out.summary


@pytest.mark.redis
def test_the_redis_profile_holds_the_list_as_a_json_array(tmp_path: Path, redis_url: str) -> None:
    events = [*_history(), event("product_view", user="r1", ts=at(hours=12), product_id="sku-b")]
    source = write_events(tmp_path / "events.jsonl", events)
    store = StoreSink(lambda: RedisStore.connect(redis_url))
    replay([source], tmp_path / "out", settings(), show_progress=False, store=store)
    check = RedisStore.connect(redis_url)
    try:
        profile = check.profile("r1")
        assert profile is not None
        assert orjson.loads(profile["recommendations"])[0] == "sku-c"
    finally:
        check.close()


_RULES = """
[triggers.cart_reminder]
on = "session_close"
when = "cart_items > 0"
payload = { products = "recommendations", first = "size(recommendations) > 0 ? recommendations[0] : ''", cart = "cart_value" }
"""


def test_trigger_payloads_can_use_the_recommendations(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(_RULES)
    url = "https://shop.example.com/"
    # Page views after the cart add: the session closes in a later batch than the add's answer.
    later = [event("page_view", user=f"g{n % 50}", ts=at(hours=12, minutes=1 + n * 0.01), url=url) for n in range(1100)]
    events = [*_history(), event("add_to_cart", user="u3", ts=at(hours=12), product_id="sku-a"), *later]
    out = run_replay(tmp_path, events, cfg=settings(segments={"rules_file": str(rules)}))
    (fired,) = [t for t in out.triggers if t["user_id"] == "u3"]
    assert fired["payload"]["products"][0] == "sku-b"
    assert fired["payload"]["first"] == "sku-b" and fired["payload"]["cart"] == 59.0
    profile = {p["user_id"]: p for p in out.profiles}["u3"]
    assert fired["payload"]["products"] == profile["recommendations"]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('when = "size(recommendations) > 0"', "when cannot read recommendations"),
        ('payload = { x = "recommendations + [top_category]" }', "must read nothing else; got top_category"),
    ],
)
def test_recommendations_are_for_payloads_over_nothing_else(rule: str, problem: str) -> None:
    from journeyflow.errors import RuleError
    from operators.rules import parse_rules
    import tomllib

    doc = tomllib.loads(f'[triggers.t]\non = "session_close"\n{rule}\n')
    with pytest.raises(RuleError, match=problem):
        parse_rules(doc)


def test_a_rule_over_recommendations_needs_the_recommender(tmp_path: Path) -> None:
    from journeyflow.errors import RuleError

    rules = tmp_path / "rules.toml"
    rules.write_text(_RULES)
    off = settings(segments={"rules_file": str(rules)}, recommendations={"enabled": False})
    with pytest.raises(RuleError, match="recommendations.enabled must be true"):
        run_replay(tmp_path, _history(), cfg=off)
