"""Model features: computed in one pass for speed, they must agree with the profile variables."""

from __future__ import annotations

import math

from journeyflow.events import Event
from operators.features import (
    CLASSIFIER_FEATURES,
    PRIOR_STATS,
    STEADY_FEATURES,
    TIMED,
    classifier_features,
    pack,
    rows_as_dicts,
    scoring_vectors,
    snapshot_vector,
    unpack,
)
from operators.labels import LabelConfig
from operators.variables import PROFILE
from operators.cluster_features import cluster_features
from operators.profile_events import apply_event, close_session
from operators.profiles import ProfileConfig, View, new_profile, prune

DAY = 86_400_000
CFG = ProfileConfig(engagement_half_life_ms=7 * DAY, affinity_half_life_ms=30 * DAY, product_window_ms=DAY)

# Feature -> the profile variable it is the log1p of (or equals).
SAME_AS = {
    "purchases_30d": "purchases_30d",
    "purchases_90d": "purchases_90d",
    "monetary_90d": "monetary_90d",
    "sessions_30d": "sessions_30d",
    "sessions_total": "sessions_total",
    "events_7d": "events_7d",
    "events_30d": "events_30d",
    "cart_items": "cart_items",
    "cart_value": "cart_value",
}


def _profile() -> View:
    profile = new_profile(0)
    for day in range(0, 120, 3):
        ts = day * DAY + 3_600_000
        apply_event(profile, CFG, Event(f"v{day}", "page_view", "u", ts, "t"))
        if day % 9 == 0:
            apply_event(profile, CFG, Event(f"p{day}", "purchase", "u", ts + 1000, "t", order_id="o", revenue=10.0 + day))
        if day % 12 == 0:
            apply_event(profile, CFG, Event(f"c{day}", "add_to_cart", "u", ts + 2000, "t", product_id=f"p{day}", price=3.5))
        close_session(profile, CFG, ts, ts + 2000, converted=day % 9 == 0)
    return View(profile, CFG, 121 * DAY, open_sessions=1)


def test_features_agree_with_the_profile_variables() -> None:
    view = _profile()
    features = classifier_features(view)
    assert set(features) == set(CLASSIFIER_FEATURES)
    for feature, variable in SAME_AS.items():
        assert math.isclose(features[feature], math.log1p(PROFILE[variable].get(view)), abs_tol=1e-9), feature
    assert math.isclose(features["engagement"], PROFILE["engagement"].get(view), abs_tol=1e-4)
    assert math.isclose(features["conversion_rate"], PROFILE["conversion_rate"].get(view), abs_tol=1e-4)


def test_features_survive_packing() -> None:
    vector = snapshot_vector(_profile())
    assert set(vector) == set(CLASSIFIER_FEATURES + PRIOR_STATS)
    assert unpack(pack(vector)) == vector


def test_prior_stats_count_repeat_sessions_and_purchases_in_days() -> None:
    view = _profile()
    stats = snapshot_vector(view)
    sessions = view.profile.sessions_closed + view.open_sessions
    assert stats["bg_sessions_x"] == sessions - 1
    assert stats["bg_purchases_x"] == view.profile.purchases_total
    assert stats["bg_age"] == 121.0  # first seen at 0, now at day 121
    assert 0 < stats["bg_purchases_tx"] <= stats["bg_sessions_tx"] <= stats["bg_age"]


def test_scoring_vectors_follow_the_silent_path_through_the_horizon() -> None:
    cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)
    vectors = rows_as_dicts(scoring_vectors(_profile(), cfg))
    assert len(vectors) == 5  # 4 whole weeks and 2 days of the fifth
    ages = [v["bg_age"] for v in vectors]
    assert ages == [121.0 + 7 * k for k in range(5)]
    # Nothing happens on the way: counts stay, silence grows, trailing windows empty.
    assert len({v["bg_sessions_x"] for v in vectors}) == 1
    assert all(a["days_since_last_seen"] < b["days_since_last_seen"] for a, b in zip(vectors, vectors[1:]))
    assert vectors[-1]["events_7d"] == 0.0


def test_steady_features_are_the_same_in_every_row() -> None:
    # The models scale them once per score (operators.model_scoring.row_input): a
    # feature listed as steady that moved along the silent path would be scored stale.
    cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)
    rows = rows_as_dicts(scoring_vectors(_profile(), cfg))
    for name in STEADY_FEATURES:
        assert len({row[name] for row in rows}) == 1, name
    timed = [CLASSIFIER_FEATURES[i] for i in TIMED]
    assert set(timed) | set(STEADY_FEATURES) == set(CLASSIFIER_FEATURES)
    assert all(len({row[name] for row in rows}) > 1 for name in ("days_since_last_seen", "events_7d", "engagement"))


def test_a_prune_as_of_the_scores_time_leaves_its_features_as_they_were() -> None:
    # The end of input reuses a score taken as of the same time before its prune
    # (operators.journey_time.finish): the features count the windows as of their
    # own time, so what a prune as of then drops was never counted. Edges included:
    # exactly 90 days after a purchase, 30 days after a session's start, midnight.
    cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)
    first_purchase = 3_600_000 + 1000
    for now in (121 * DAY, 122 * DAY, first_purchase + 90 * DAY, 3 * DAY + 3_600_000 + 30 * DAY, 160 * DAY - 1):
        view = _profile()
        view = View(view.profile, CFG, now, open_sessions=1)
        before = (scoring_vectors(view, cfg), cluster_features(view))
        pruned = _profile().profile
        prune(pruned, CFG, now)
        assert len(pruned.purchases) < len(view.profile.purchases) or now < 100 * DAY  # the prune dropped something
        assert (scoring_vectors(View(pruned, CFG, now, 1), cfg), cluster_features(View(pruned, CFG, now, 1))) == before, now


def test_every_row_of_a_score_counts_its_own_windows_exactly() -> None:
    # Each row's counts are log1p of the variables as of the row's own time, bit for bit,
    # also where a window is empty (the rows skip the call for a zero) and for a customer
    # who never bought (the days since a purchase are the cap at every time).
    cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=70 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)
    bought = _profile()
    browsed = new_profile(0)
    for day in range(0, 40, 4):
        apply_event(browsed, CFG, Event(f"b{day}", "page_view", "u", day * DAY, "t"))
    counted = ("purchases_30d", "purchases_90d", "sessions_30d", "events_7d", "events_30d")
    for profile, now in ((bought.profile, bought.now_ms), (browsed, 41 * DAY)):
        rows = rows_as_dicts(scoring_vectors(View(profile, CFG, now, open_sessions=1), cfg))
        assert len(rows) == 10
        for k, row in enumerate(rows):
            then = View(profile, CFG, now + k * 7 * DAY, open_sessions=1)
            for name in counted:
                assert row[name] == math.log1p(PROFILE[name].get(then)), (k, name)
            assert math.isclose(row["monetary_90d"], math.log1p(PROFILE["monetary_90d"].get(then)), abs_tol=1e-9)
        if profile is browsed:
            assert {row["days_since_last_purchase"] for row in rows} == {math.log1p(365.0)}
            assert rows[-1]["events_30d"] == rows[-1]["purchases_90d"] == 0.0


def test_scoring_vectors_are_each_row_packed_alone_and_joined() -> None:
    # A score's rows are packed in one call (up to eight rows), else row by row: the same
    # bytes as snapshot_vector at each time, packed and joined, for one row, five and twelve.
    view = _profile()
    for weeks in (1, 5, 12):
        horizon = weeks * 7 * DAY - DAY
        cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=horizon, purchase_horizon_ms=DAY, max_silence_ms=90 * DAY)
        later = [View(view.profile, CFG, view.now_ms + k * 7 * DAY, view.open_sessions) for k in range(weeks)]
        assert scoring_vectors(view, cfg) == b"".join([pack(snapshot_vector(v)) for v in later]), weeks
