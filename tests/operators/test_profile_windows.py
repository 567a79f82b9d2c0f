"""A profile's trailing windows and decayed scores (operators/profile_windows.py)."""

from __future__ import annotations

import math

from journeyflow.events import Event, Item
from operators.profile_windows import (
    COUNT_MASK, DAY_MS, DAY_SHIFT, add_decayed, decay, last_time, pack_times, prune, times_of, views_since, window_count,
)  # fmt: skip
from operators.profile_events import apply_event, close_session
from operators.profiles import Profile, ProfileConfig, new_profile

CFG = ProfileConfig(engagement_half_life_ms=7 * DAY_MS, affinity_half_life_ms=30 * DAY_MS, product_window_ms=DAY_MS)


def test_a_decayed_score_does_not_depend_on_arrival_order() -> None:
    weights = [(3.0, 5 * DAY_MS), (1.0, 0), (2.5, 2 * DAY_MS), (4.0, 9 * DAY_MS)]
    scores = []
    for order in (weights, weights[::-1], sorted(weights, key=lambda w: w[1])):
        value, as_of = 0.0, 0
        for weight, at in order:
            value, as_of = add_decayed(value, as_of, weight, at, CFG.engagement_half_life_ms)
        scores.append(decay(value, as_of, 10 * DAY_MS, CFG.engagement_half_life_ms))
    assert all(math.isclose(s, scores[0], rel_tol=1e-12) for s in scores)
    # The same as each weight decayed alone from its own time.
    alone = sum(decay(w, at, 10 * DAY_MS, CFG.engagement_half_life_ms) for w, at in weights)
    assert math.isclose(scores[0], alone, rel_tol=1e-12)


def test_window_count_includes_the_window_start() -> None:
    times = [10, 20, 20, 30]
    assert window_count(times, 20) == 3
    assert window_count(times, 21) == 1
    assert window_count(times, 31) == 0
    assert window_count([], 0) == 0


def _busy_profile() -> Profile:
    profile = new_profile(0)
    for day in (0, 40, 85, 95):
        ts = day * DAY_MS
        apply_event(profile, CFG, Event(f"v{day}", "product_view", "u", ts, "t", product_id=f"p{day}", category="c"))
        apply_event(profile, CFG, Event(f"s{day}", "product_view", "u", ts + 1, "t", product_id="same", category="d"))
        purchase = Event(
            f"b{day}", "purchase", "u", ts + 2, "t", order_id=f"o{day}", revenue=10.0, items=(Item(f"q{day}", "c", 10.0, 1),)
        )
        apply_event(profile, CFG, purchase)
        close_session(profile, CFG, ts, ts + 10, converted=True)
    return profile


def test_packed_views_read_as_signed_little_endian_times() -> None:
    # views_since and last_time read the packed bytes as int.from_bytes(..., "little", signed=True).
    for times in ([5], [-7, -3, 0], [1, 5, 5, 9], [1_785_000_000_000 + k for k in range(70)], [-(2**63), 2**63 - 1]):
        packed = pack_times(times)
        assert last_time(packed) == int.from_bytes(packed[-8:], "little", signed=True) == times[-1]
        for since in sorted({*times, times[0] - 1, times[-1] + 1}):
            assert views_since(packed, since) == len([t for t in times if t >= since])


def test_prune_drops_what_left_every_trailing_window() -> None:
    profile = _busy_profile()
    now = 95 * DAY_MS + 100
    prune(profile, CFG, now)
    assert [ts // DAY_MS for ts, _ in profile.purchases] == [40, 85, 95]  # 90 days
    assert [ts // DAY_MS for ts in profile.session_starts] == [85, 95]  # 30 days
    assert [packed >> DAY_SHIFT for packed in profile.day_counts] == [85, 95]  # 30 days of daily counts
    assert sorted(profile.bought) == ["q85", "q95"]  # 30 days
    # The product window is one day: only the last day's views stay, and the peak is recomputed.
    assert {p: times_of(t).tolist() for p, t in profile.view_times.items()} == {"p95": [95 * DAY_MS], "same": [95 * DAY_MS + 1]}
    assert profile.peak_views == 1
    assert profile.pruned_ms == now
    # Lifetime totals are not windows.
    assert profile.purchases_total == 4 and profile.sessions_closed == 4


def test_prune_moves_affinity_forward_once_a_half_life_keeping_its_ranking() -> None:
    profile = new_profile(0)
    apply_event(profile, CFG, Event("a", "product_view", "u", 0, "t", product_id="p", category="shoes"))
    apply_event(profile, CFG, Event("b", "purchase", "u", DAY_MS, "t", order_id="o", revenue=1.0))
    apply_event(profile, CFG, Event("c", "add_to_cart", "u", 2 * DAY_MS, "t", product_id="p", category="hats", price=1.0))
    before = dict(profile.affinity)
    prune(profile, CFG, 10 * DAY_MS)  # less than a half-life: scores stay as of their time
    assert profile.affinity == before and profile.affinity_ms == 0
    prune(profile, CFG, 60 * DAY_MS)
    assert profile.affinity_ms == 60 * DAY_MS
    factor = 0.25  # two half-lives
    for name, score in before.items():
        assert math.isclose(profile.affinity[name], score * factor, rel_tol=1e-12)
    assert max(profile.affinity, key=profile.affinity.__getitem__) == "hats"


def test_the_profile_module_re_exports_the_window_helpers() -> None:
    # Tests, the merge and the journey's time path import them from operators.profiles.
    from operators import profile_windows, profiles

    for name in ("DAY_MS", "SESSION_STARTS_MS", "decay", "prune", "window_count"):
        assert getattr(profiles, name) is getattr(profile_windows, name)


def test_daily_counts_and_view_times_stay_sorted_when_events_arrive_out_of_order() -> None:
    profile = new_profile(0)
    for n, day in enumerate((5, 3, 5, 4, 3, 6)):
        ts = day * DAY_MS + 10 - n
        apply_event(profile, CFG, Event(f"e{n}", "product_view", "u", ts, "t", product_id="p", category="c"))
    # (day, count) packed per day, in day order whatever the arrival order.
    assert [(v >> DAY_SHIFT, v & COUNT_MASK) for v in profile.day_counts] == [(3, 2), (4, 1), (5, 2), (6, 1)]
    assert times_of(profile.view_times["p"]).tolist() == sorted(
        day * DAY_MS + 10 - n for n, day in enumerate((5, 3, 5, 4, 3, 6))
    )
    assert profile.events_total == sum(v & COUNT_MASK for v in profile.day_counts) == 6
