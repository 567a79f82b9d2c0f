"""Segments decided after the models: hysteresis keeps a hovering score from firing entries again and again."""

from __future__ import annotations

from flows.step_configs import audience_config
from journeyflow.records import SegmentChange, Trigger
from journeyflow.step_records import UserUpdate
from operators.rules import load_rules
from tests.helpers import settings

RULES = load_rules(settings().rules_path)


def _scored(ts_ms: int, churn_risk: float) -> UserUpdate:
    update = UserUpdate("u1", ts_ms, "update", "time", None, (), {"days_since_last_seen": 1.0, "top_category": "c"})
    update.scores = {"churn_risk": churn_risk, "purchase_propensity": 0.5, "model_version": "m"}
    return update


def test_at_risk_enters_above_0_7_and_leaves_only_below_0_5() -> None:
    logic = audience_config(RULES).build(None)
    changes: list[SegmentChange] = []
    fired: list[Trigger] = []
    for n, risk in enumerate((0.6, 0.72, 0.69, 0.71, 0.55, 0.68, 0.49, 0.69, 0.75)):
        out, _ = logic.on_item(_scored(n, risk))
        changes += [o for o in out if isinstance(o, SegmentChange)]
        fired += [o for o in out if isinstance(o, Trigger) and o.rule == "reengagement"]
    assert [(c.ts_ms, c.entered, c.exited) for c in changes] == [
        (1, ("at_risk",), ()),
        (6, (), ("at_risk",)),
        (8, ("at_risk",), ()),
    ]
    # One entry per crossing: without hysteresis 0.72/0.69/0.71 would enter twice.
    assert [t.ts_ms for t in fired] == [1]  # the second entry is within the 7-day cooldown


def test_scores_are_merged_and_written_to_the_store_when_they_change() -> None:
    from journeyflow.records import ProfileRow

    logic = audience_config(RULES, store_rows=True).build(None)
    placed = _scored(0, 0.2)
    placed.scores = {"cluster": 3, "model_version": "m"}
    out, _ = logic.on_item(placed)
    assert [o.fields for o in out if isinstance(o, ProfileRow) and o.fields] == [{"cluster": 3}]
    out, _ = logic.on_item(_scored(1, 0.2))  # scored without a placement: the cluster stays
    assert [o.fields for o in out if isinstance(o, ProfileRow) and o.fields] == [
        {"purchase_propensity": 0.5, "churn_risk": 0.2}
    ]
    out, _ = logic.on_item(_scored(2, 0.2))  # nothing changed: nothing to write
    assert [o for o in out if isinstance(o, ProfileRow) and o.fields] == []
    assert "cluster:3" in logic.state.segments


def test_a_segment_change_shows_the_variables_of_the_rules_that_changed() -> None:
    import orjson

    logic = audience_config(RULES).build(None)
    update = UserUpdate(
        "u1", 0, "update", "event", "e1", ("frequent_browser",), {"sessions_30d": 4, "purchases_30d": 0, "engagement": 0.3}
    )
    (change,) = [o for o in logic.on_item(update)[0] if isinstance(o, SegmentChange)]
    profile = orjson.loads(change.to_json())["profile"]
    assert {"recency_days", "frequency_30d", "monetary_30d", "engagement", "purchase_propensity", "churn_risk"} <= set(profile)
    assert profile["sessions_30d"] == 4 and profile["purchases_30d"] == 0


def test_the_final_row_is_the_last_of_a_user_and_releases_its_state() -> None:
    from bytewax.operators import StatefulLogic

    from journeyflow.records import ProfileRow

    logic = audience_config(RULES).build(None)
    _, discard = logic.on_item(_scored(0, 0.8))
    assert discard is StatefulLogic.RETAIN
    final = UserUpdate("u1", 1, "final", "time", None, (), {}, profile={"events_total": 3})
    out, discard = logic.on_item(final)
    (row,) = [o for o in out if isinstance(o, ProfileRow)]
    assert row.final and "at_risk" in row.segments and discard is StatefulLogic.DISCARD
