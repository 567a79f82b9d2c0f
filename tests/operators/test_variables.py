"""The variable registry: every variable evaluates at run time in every rule context, typos stop start-up."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from journeyflow.errors import RuleError
from operators.rules import parse_rules
from operators.variables import (
    CONTEXTS,
    ENTRY,
    EVENT_FIELDS,
    EVENT_LOCALS,
    MAPS,
    MODEL,
    PROFILE,
    RECOMMEND,
    SESSION_FIELDS,
)
from tests.helpers import at, event, run_replay, settings

_PYTHON_TYPES = {"int": int, "double": float, "bool": bool, "string": str, "list(string)": list}


def _journey() -> list[dict]:
    """Two sessions of a user who views, carts, buys, and abandons a cart."""
    return [
        event("page_view", ts=at(0), context={"channel": "web"}),
        event("product_view", ts=at(1), product_id="p1", category="shoes", price=10.0),
        event("add_to_cart", ts=at(2), product_id="p1", category="shoes", price=10.0),
        event("purchase", ts=at(3), revenue=10.0, items=[{"product_id": "p1", "price": 10.0}]),
        event("email_click", ts=at(4), campaign="spring"),
        event("product_view", ts=at(hours=5), product_id="p2", category="bags", price=20.0),
        event("add_to_cart", ts=at(hours=5, minutes=1), product_id="p2", category="bags", price=20.0),
        event("page_view", ts=at(days=3)),
    ]


def _every_variable_rules() -> dict:
    """One rule per (context, name): true whenever the name is there, failing when it is not."""
    segments = {f"s_{n}": {"when": f"{n} == {n}"} for n in (*PROFILE, *MODEL)}
    triggers: dict = {}
    contexts = {
        "event": (*PROFILE, *EVENT_LOCALS, *(f"event.{f}" for f in EVENT_FIELDS)),
        "session_close": (*PROFILE, *(f"session.{f}" for f in SESSION_FIELDS)),
        "segment_entry": (*PROFILE, *MODEL, *ENTRY),
    }
    for on, names in contexts.items():
        for name in names:
            rule = {"on": on, "when": f"{name} == {name}", "payload": {"value": name}}
            if on == "segment_entry":
                # A segment over a score: entered once the models scored the user.
                rule["segment"] = "s_churn_risk"
            triggers[f"{on}.{name}"] = rule
    return {"segments": segments, "triggers": triggers}


def test_the_contexts_offer_every_registered_name() -> None:
    offered = {name for names in CONTEXTS.values() for name in names}
    assert offered == {*PROFILE, *MODEL, *EVENT_LOCALS, *ENTRY, *MAPS, *RECOMMEND}


def test_every_registered_variable_evaluates_at_run_time_in_every_rule_context(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    doc = _every_variable_rules()
    parse_rules(doc)  # every one passes the start-up check
    rules.write_text(_toml(doc))
    # Scores from the first update on, so model variables reach the rules.
    cfg = settings(segments={"rules_file": str(rules)}, models={"min_examples": 0})
    # Enough users for the clusters to finish their warm-up, so `cluster` is known too.
    users = [dict(e, user_id=f"u{n}", event_id=f"{e['event_id']}-{n}") for n in range(120) for e in _journey()]
    result = run_replay(tmp_path, users, cfg=cfg)
    assert result.summary["rule_errors"] == {}
    fired: dict[str, list] = {}
    for trigger in result.triggers:
        fired.setdefault(trigger["rule"], []).append(trigger["payload"]["value"])
    assert sorted(set(doc["triggers"]) - set(fired)) == []
    for rule, found in fired.items():
        on, _, name = rule.partition(".")
        top, _, field = name.partition(".")
        entry = MAPS[top][field] if field else {**PROFILE, **MODEL, **EVENT_LOCALS, **ENTRY}[name]
        for value in found:
            if value is None:
                assert entry.nullable, rule
            else:
                assert type(value) is _PYTHON_TYPES[entry.cel_type], (rule, value)
    in_some = {s for profile in result.profiles for s in profile["segments"]}
    assert {f"s_{n}" for n in (*PROFILE, *MODEL)} <= in_some


def _toml(doc: dict) -> str:
    lines = []
    for kind, rules in doc.items():
        for name, rule in rules.items():
            lines.append(f'[{kind}."{name}"]')
            for key, value in rule.items():
                if isinstance(value, dict):
                    inner = ", ".join(f"{k} = {orjson.dumps(v).decode()}" for k, v in value.items())
                    lines.append(f"{key} = {{ {inner} }}")
                else:
                    lines.append(f"{key} = {orjson.dumps(value).decode()}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # Behind a guard: never evaluated on sample values, caught by name.
        (
            {"on": "event", "when": "product_views > 1 && event.prise > 10.0"},
            "trigger 't': unknown field event.prise in 'product_views > 1 && event.prise > 10.0' "
            "(did you mean 'price'?)",
        ),
        (
            {"on": "session_close", "when": "false && size(session.abandonned) > 0"},
            "unknown field session.abandonned in 'false && size(session.abandonned) > 0' (did you mean 'abandoned'?)",
        ),
        (
            {"on": "event", "when": "false && purchasess_total > 1"},
            "unknown variable(s) purchasess_total (did you mean 'purchases_total'?)",
        ),
        (
            {"on": "event", "when": "cart_value * 2.0"},
            "must be a boolean condition; got 'cart_value * 2.0', a double, instead (cart_value is a double)",
        ),
        ({"on": "event", "when": "cart_items * 2.0 > 1.0"}, "'cart_items * 2.0 > 1.0' cannot be evaluated (cart_items is an int)"),
        ({"on": "session_close", "when": "event.price > 1.0"}, "unknown variable(s) event"),
    ],
)
def test_a_typo_or_a_type_error_stops_start_up_naming_the_rule(rule: dict, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules({"triggers": {"t": rule}})
    assert message in str(caught.value)
    assert "1.0 instead" not in str(caught.value)  # never a sample value the user did not write


def test_comprehension_bindings_are_not_typos() -> None:
    parse_rules({"triggers": {"t": {"on": "session_close", "when": "session.abandoned.exists(p, p == 'x')"}}})


def test_run_time_rule_errors_are_counted_per_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    # A page view has no price: null > 100.0 fails at run time, treated as false.
    rules.write_text('[triggers.pricey]\non = "event"\nwhen = "event.price > 100.0"\n')
    cfg = settings(segments={"rules_file": str(rules)})
    result = run_replay(tmp_path, [event("page_view", ts=at(n)) for n in range(3)], cfg=cfg)
    assert result.summary["rule_errors"] == {"pricey": 3}
    assert result.triggers == []


@pytest.mark.parametrize(
    "affinity",
    [{}, {"a": 1.0}, {"a": 1.0, "b": 2.0, "c": 2.0}, {"b": 2.0, "a": 2.0}, {"": 0.5, "x": 0.5, "y": 0.7}, {"": 3.0, "x": 1.0}],
)
def test_top_category_is_the_first_of_the_highest_as_max_gives_it(affinity: dict[str, float]) -> None:
    from flows.step_configs import journey_config
    from operators import profiles
    from operators.rules import load_rules

    cfg = journey_config(settings(), load_rules(settings().rules_path), timers=False)
    profile = profiles.new_profile(0)
    profile.affinity = affinity
    view = profiles.View(profile, cfg.profiles, 0)
    assert PROFILE["top_category"].get(view) == (max(affinity, key=affinity.__getitem__) if affinity else "")


def test_the_rows_category_affinity_is_each_score_decayed_highest_first_ties_in_their_order() -> None:
    from flows.step_configs import journey_config
    from operators import profiles
    from operators.profile_windows import decay
    from operators.rules import load_rules
    from operators.views import to_fields

    cfg = journey_config(settings(), load_rules(settings().rules_path), timers=False)
    half_life = cfg.profiles.affinity_half_life_ms
    profile = profiles.new_profile(0)
    profile.affinity = {"a": 1.0, "b": 3.0, "c": 1.0, "d": 3.0, "e": 0.123456789, "f": 2.0}
    profile.affinity_ms = 5_000
    for now in (0, 5_000, 5_000 + half_life // 3, 5_000 + 7 * half_life):
        view = profiles.View(profile, cfg.profiles, now)
        expected = {
            name: round(decay(score, 5_000, max(now, 5_000), half_life), 4)
            for name, score in sorted(profile.affinity.items(), key=lambda kv: -kv[1])
        }
        shown = to_fields(view)["category_affinity"]
        assert list(shown.items()) == list(expected.items())
