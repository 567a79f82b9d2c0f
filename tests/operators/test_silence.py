"""The life table of silences: young customers are read from their own rows, never below all ages'."""

from __future__ import annotations

import math
import pickle

from operators.silence import AGE_BANDS, MIN_BAND, SilenceCurve

DAY = 86_400_000
WEEK = 7.0
WEIGHTS = (1.0, 1.0, 1.0, 1.0, 2 / 7)


def _curve() -> SilenceCurve:
    curve = SilenceCurve()
    start = 1_000 * DAY
    # The stream's first customers (left-censored: "young" only because the
    # stream starts there) come back after a quiet week most of the time.
    for i in range(200):
        at = start + (i % 8) * 7 * DAY
        curve.learn(2.0, WEEK, i % 5 == 0, age_days=(at - start) / DAY, ts_ms=at)
    for i in range(100):
        curve.learn(9.0 + i % 5, WEEK, i % 2 == 0, age_days=40.0, ts_ms=start + 60 * DAY)
    # Customers first seen ten weeks later, a few days old, mostly never come back.
    for i in range(3 * MIN_BAND):
        at = start + 73 * DAY
        curve.learn(2.0, WEEK, i % 10 != 0, age_days=3.0, ts_ms=at)
    return curve


def test_the_young_rows_count_only_customers_first_seen_after_the_streams_first_weeks() -> None:
    curve = _curve()
    assert sum(map(sum, curve.young_examples)) == 3 * MIN_BAND
    assert curve.young_quiet(0, 0) == (3 * MIN_BAND * 9 // 10 + 1) / (3 * MIN_BAND + 2)
    assert curve.young_quiet(1, 1) == curve.young_quiet(0, 0)  # no examples of that age yet: the shorter silence's
    assert curve.young_quiet(0, 3) == curve.young_quiet(0, 0)


def test_a_young_customer_gets_their_own_rows_chance_and_an_old_one_all_ages() -> None:
    curve = _curve()
    now = 1_000 * DAY + 80 * DAY
    old = curve.p_silent(2.0, WEEK, WEIGHTS, age_days=80.0, now_ms=now)
    unknown_age = curve.p_silent(2.0, WEEK, WEIGHTS)
    young = curve.p_silent(2.0, WEEK, WEIGHTS, age_days=3.0, now_ms=now)
    assert old is not None and old == unknown_age
    assert young is not None and young > 2 * old
    # Weeks 0-3 (aged 3 to 24 days) from the young rows, where only week 0 is
    # known (carried to longer silences) unless all ages' is higher; week 4 from all ages.
    own = curve.young_quiet(0, 0)
    all_ages = [curve.quiet_after((2.0 + k * WEEK) / WEEK) for k in range(5)]
    assert own is not None and None not in all_ages
    chances = [max(own, q) for q in all_ages[:4] if q is not None] + [q for q in all_ages[4:] if q is not None]
    expected = math.prod(q**w for q, w in zip(chances, WEIGHTS, strict=True))
    assert math.isclose(young, expected)


def test_the_young_rows_never_lower_the_floor() -> None:
    curve = SilenceCurve()
    start = 0
    curve.learn(0.0, WEEK, False, age_days=0.0, ts_ms=start)
    for i in range(3 * MIN_BAND):
        curve.learn(2.0, WEEK, i % 2 == 0, age_days=60.0, ts_ms=start + 60 * DAY)
        # New customers who always come back.
        curve.learn(2.0, WEEK, False, age_days=2.0, ts_ms=start + (7 * AGE_BANDS + 2) * DAY + DAY)
    now = start + 40 * DAY
    assert curve.p_silent(2.0, WEEK, WEIGHTS, age_days=3.0, now_ms=now) == curve.p_silent(2.0, WEEK, WEIGHTS)


def _counted(examples: list[int], stayed: list[int]) -> SilenceCurve:
    curve = SilenceCurve()
    for band, (n, k) in enumerate(zip(examples, stayed, strict=True)):
        for i in range(n):
            curve.learn(band * WEEK + 1.0, WEEK, i < k)
    return curve


def test_the_chance_of_no_return_never_falls_as_the_silence_grows() -> None:
    # Band 3 stays away less often than band 2 (noise): the two are pooled.
    curve = _counted([200, 100, 40, 40, 0, 0], [40, 50, 36, 32, 0, 0])
    chances = [curve.quiet(b) for b in range(6)]
    assert all(q is not None for q in chances)
    assert chances == sorted(chances)  # type: ignore[type-var]
    assert chances[2] == chances[3] == (36 + 32 + 1) / (80 + 2)


def test_past_the_last_populated_band_the_chance_of_a_return_keeps_falling_at_the_rate_of_the_silences() -> None:
    curve = _counted([200, 100, 40, 3, 0], [40, 50, 30, 3, 0])
    back = [1.0 - q for q in (curve.quiet(b) for b in range(6)) if q is not None]
    ratio = back[2] / back[1]  # two silences' blocks after the first: the fit is their ratio
    assert 0.0 < ratio < 1.0
    assert math.isclose(back[3], back[2] * ratio)  # band 3's three examples are too few to be read
    assert math.isclose(back[4], back[2] * ratio**2)
    # Never surer than the last block's counts allow: all of its 40 stayed away, by Laplace's rule.
    assert curve.quiet(12) == 41 / 42
    # The floor of a long silence is higher than a constant chance (the last band copied) would give.
    constant = (31 / 42) ** 4 * (31 / 42) ** (2 / 7)
    floor = curve.p_silent(3 * WEEK, WEEK, WEIGHTS)
    assert floor is not None and floor > constant


def test_a_restored_curve_gives_the_same_chances_and_its_snapshot_holds_only_the_counts() -> None:
    curve = _counted([200, 100, 40], [40, 50, 30])
    before = curve.p_silent(15.0, WEEK, WEIGHTS)
    restored = pickle.loads(pickle.dumps(curve))
    assert "_curve" in curve.__dict__ and "_curve" not in restored.__dict__
    assert restored.p_silent(15.0, WEEK, WEIGHTS) == before
    # A new count is read at once (the derived curve follows the counts).
    restored.learn(15.0, WEEK, False)
    assert restored.p_silent(15.0, WEEK, WEIGHTS) != before


def test_the_tails_fall_is_fitted_over_every_silence_not_only_the_last_two_bands() -> None:
    # A thin last band that barely differs from the one before (their ratio 0.92 would all but
    # stop the fall); the fit over bands 1 to 4 keeps the fall the silences show (0.62).
    curve = _counted([4000, 1000, 400, 200, 30, 0], [1000, 400, 240, 160, 25, 0])
    back = [1.0 - q for q in (curve.quiet(b) for b in range(6)) if q is not None]
    last_two = back[4] / back[3]
    fitted = back[5] / back[4]
    assert fitted < last_two
    assert min(back[b + 1] / back[b] for b in range(1, 4)) <= fitted <= max(back[b + 1] / back[b] for b in range(1, 4))


def test_a_return_is_counted_once_its_interval_has_passed_so_a_moments_returns_never_outrun_its_silences() -> None:
    curve = SilenceCurve()
    week_ms = int(WEEK * DAY)
    moment = 10 * week_ms
    # The moment's returns are known at once, its silences a week later: the returns wait.
    for _ in range(30):
        curve.learn(2.0, WEEK, False, age_days=60.0, ts_ms=moment)
    assert curve.examples[0] == 0 and curve.quiet(0) is None
    waiting = pickle.loads(pickle.dumps(curve))  # a restart keeps what waits
    for restored in (curve, waiting):
        restored.learn(2.0, WEEK, True, age_days=60.0, ts_ms=moment)  # the week has passed
        assert restored.examples[0] == 31 and restored.stayed[0] == 1 and restored.pending == {}
        # A return known after its week has passed (a late update) is counted at once.
        restored.learn(2.0, WEEK, False, age_days=60.0, ts_ms=moment)
        assert restored.examples[0] == 32
    assert curve.quiet(0) == waiting.quiet(0) == (1 + 1) / (32 + 2)
    # A later moment's snapshot shows the earlier week has passed too.
    curve.learn(9.0, WEEK, False, age_days=60.0, ts_ms=moment + week_ms)
    curve.learn(2.0, WEEK, False, age_days=60.0, ts_ms=moment + 2 * week_ms)
    assert curve.examples[:2] == [32, 1] and list(curve.pending) == [moment + 2 * week_ms]


def test_a_snapshot_from_before_the_waiting_returns_loads_with_nothing_waiting() -> None:
    curve = _counted([200, 100, 40], [40, 50, 30])
    state = dict(curve.__getstate__())
    del state["pending"], state["clock_ms"]
    old = SilenceCurve.__new__(SilenceCurve)
    old.__setstate__(state)
    assert old.pending == {} and old.clock_ms is None
    assert old.p_silent(15.0, WEEK, WEIGHTS) == curve.p_silent(15.0, WEEK, WEIGHTS)
