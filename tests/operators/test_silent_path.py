"""The silent path from a snapshot alone: the same vectors the journey step builds from the whole profile, but for trailing-window counts."""

from __future__ import annotations

import math

from operators.features import rows_as_dicts, scoring_vectors, snapshot_vector
from operators.labels import LabelConfig
from operators.silent_path import silent_path
from tests.operators.test_features import _profile

DAY = 86_400_000
WINDOWED = {"purchases_30d", "purchases_90d", "monetary_90d", "sessions_30d", "events_30d"}


def test_the_silent_path_of_a_snapshot_matches_the_profiles_but_for_window_counts() -> None:
    cfg = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)
    view = _profile()
    exact = rows_as_dicts(scoring_vectors(view, cfg))
    approx = silent_path(snapshot_vector(view), len(exact), 7.0, view.cfg.engagement_half_life_ms / DAY)
    assert len(approx) == len(exact)
    for k, (a, e) in enumerate(zip(approx, exact, strict=True)):
        assert set(a) == set(e)
        for name in e:
            if name in WINDOWED:
                # Spread evenly in the window: within a count of a few of the truth.
                assert abs(math.expm1(a[name]) - math.expm1(e[name])) <= 0.35 * math.expm1(e[name]) + 3.0, (k, name)
            else:
                assert math.isclose(a[name], e[name], rel_tol=1e-6, abs_tol=1e-6), (k, name, a[name], e[name])
