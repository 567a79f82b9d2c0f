"""Model features: computed in one pass for speed, they must agree with the profile variables."""

from __future__ import annotations

import math

from journeyflow.events import Event
from operators.features import CLASSIFIER_FEATURES, classifier_features, pack, unpack
from operators.variables import PROFILE
from operators.profiles import ProfileConfig, View, apply_event, close_session, new_profile

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
    features = classifier_features(_profile())
    assert unpack(pack(features)) == features
