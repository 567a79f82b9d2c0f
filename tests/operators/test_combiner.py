"""The stacks: non-negative weights, no say before enough outcomes, one fit per grid interval, grid moments
labelled once their horizon passes, resumed from snapshots, and old snapshots still load."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np

from journeyflow.step_records import UserUpdate
from operators.bgnbd import _rank
from operators.combiner import MIN_CLASS, Combiner, fit_logistic, fit_nonnegative
from operators.features import CLASSIFIER_FEATURES, PRIOR_STATS, pack, pack_rows
from operators.grid_moments import SAMPLE, GridMoments
from operators.labels import Example
from operators.models import ModelConfig
from state.serde import decode_state, encode_state

DAY = 86_400_000
WEEK = 7 * DAY
HORIZONS = {"churn": 30 * DAY, "propensity": 30 * DAY}
CFG = replace(ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1), stack=True, min_resolved=200)


def test_the_non_negative_fit_drops_inputs_of_the_wrong_sign_and_matches_the_plain_fit_otherwise() -> None:
    rng = np.random.default_rng(3)
    for trial in range(20):
        x = rng.normal(size=(3000, 4))
        true = rng.normal(size=4)
        y = rng.random(3000) < 1 / (1 + np.exp(-(x @ true)))
        w = fit_nonnegative(x, y)
        assert (w[1:] >= 0.0).all(), trial
        if (fit_logistic(x, y)[1:] > 0.0).all():
            assert np.allclose(w, fit_logistic(x, y))
        # An input against the outcome gets no weight at all, never a negative one.
        for i in np.flatnonzero(true < -0.3):
            assert w[1 + i] == 0.0


def test_a_stack_has_no_say_before_enough_outcomes_of_each_kind_then_is_fitted_once_per_interval() -> None:
    combiner = Combiner()
    rng = random.Random(1)
    z = (0.0, 0.0, 0.0, 0.0)
    for _ in range(500):
        combiner.learn("churn", z, False)
    combiner.refit(10 * WEEK, WEEK, min_resolved=100)
    assert combiner.apply("churn", z, 0.3) == 0.3  # one kind of outcome only: the models' own score
    for _ in range(2000):
        signal = rng.gauss(0.0, 1.0)
        combiner.learn("churn", (signal, 0.0, rng.gauss(0.0, 1.0), 0.0), rng.random() < 1 / (1 + math.exp(-2.0 * signal)))
    assert combiner.stacks["churn"].fit is None
    combiner.refit(10 * WEEK + DAY, WEEK, min_resolved=100)  # the same interval: not again
    assert combiner.stacks["churn"].fit is None
    combiner.refit(11 * WEEK, WEEK, min_resolved=100)
    fit = combiner.stacks["churn"].fit
    assert fit is not None and combiner.apply("churn", (2.0, 0.0, 0.0, 0.0), 0.3) > 0.8 > 0.2 > combiner.apply("churn", (-2.0, 0.0, 0.0, 0.0), 0.3)
    assert combiner.stacks["propensity"].fit is None  # no outcomes there
    report = combiner.report()["churn"]
    assert report["outcomes"] == 2500 and report["horizon_auc"]["score"] > 0.75 and report["weights"]["score"] > 0.0
    assert MIN_CLASS <= 20


def _record(moments: GridMoments, combiner: Combiner, user: str, moment_ms: int) -> None:
    assert moments.follows(user)
    moments.record(user, moment_ms, (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))


def test_a_grid_moment_is_learned_with_its_outcome_once_its_whole_horizon_has_passed() -> None:
    moments, combiner = GridMoments(), Combiner()
    moment = 100 * WEEK
    learned = []
    combiner.learn = lambda task, z, outcome: learned.append((task, outcome))  # type: ignore[method-assign]

    def resolve(user: str, at_ms: int, days_seen: float, days_bought: float | None) -> None:
        moments.resolve(user, at_ms, days_seen, days_bought, combiner, HORIZONS, WEEK)

    # Silent after the moment, rescored weekly: stayed away, no purchase, learned at 30 days.
    _record(moments, combiner, "quiet", moment)
    for week in range(1, 5):
        resolve("quiet", moment + week * WEEK, 7.0 * week + 1.0, None)
    assert learned == []
    resolve("quiet", moment + 5 * WEEK, 36.0, None)
    assert learned == [("churn", True), ("propensity", False)]
    assert moments.followed[_rank("quiet")] == []
    # Back and buying 10 days after the moment: known at once, learned only once the horizon has passed.
    learned.clear()
    _record(moments, combiner, "back", moment)
    resolve("back", moment + 10 * DAY, 0.0, 0.0)
    assert learned == []
    resolve("back", moment + 40 * DAY, 30.0, 30.0)
    assert learned == [("churn", False), ("propensity", True)]
    # Back only 34 days after the moment, past the horizon: stayed away.
    learned.clear()
    _record(moments, combiner, "late", moment)
    resolve("late", moment + 34 * DAY, 0.0, None)
    assert learned == [("churn", True), ("propensity", False)]


def test_the_followed_sample_is_bounded_and_an_erased_customer_leaves_it() -> None:
    moments = GridMoments()
    followed = [f"u{i}" for i in range(SAMPLE + 300) if moments.follows(f"u{i}")]
    assert len(moments.followed) == SAMPLE == len(moments._heap) and len(followed) > SAMPLE
    kept = next(u for u in followed if _rank(u) in moments.followed)
    moments.forget(kept)
    assert _rank(kept) not in moments.followed and len(moments.followed) == SAMPLE - 1 == len(moments._heap)


def _vector(rng: random.Random, days_seen: float, week: int, u: int) -> dict[str, float]:
    v = {name: 0.0 for name in CLASSIFIER_FEATURES + PRIOR_STATS}
    v["days_since_last_seen"] = math.log1p(days_seen)
    v["days_since_first_seen"] = math.log1p(7.0 * week + 30.0)
    v["days_since_last_purchase"] = math.log1p(365.0)
    v["sessions_total"] = math.log1p(1 + u % 7)
    v["engagement"] = rng.random() * 0.5
    v.update(bg_age=7.0 * week + 30.0, bg_sessions_x=float(u % 7), bg_sessions_tx=5.0, bg_purchases_x=0.0)
    return v


def _stream(seed: int) -> list[UserUpdate]:
    """Return weekly updates of 80 customers over 20 weeks: a snapshot's label, then a score with the rows now."""
    rng = random.Random(seed)
    items = []
    last_seen = {u: 0.0 for u in range(80)}
    for week in range(20):
        for u in range(80):
            now_day = 7.0 * week
            if rng.random() < (0.7 if u % 2 else 0.2):
                last_seen[u] = now_day - rng.uniform(0.0, 1.0)
            days = now_day - last_seen[u] + 0.5
            v = _vector(rng, days, week, u)
            example = Example("churn", week * WEEK, pack(v), days > 7.0)
            items.append(UserUpdate(f"u{u}", week * WEEK + DAY, "update", "event", None, (), {}, features=pack_rows((v,) * 5), examples=(example,)))
    return items


def test_a_restored_snapshot_gives_the_same_stacked_scores_as_an_uninterrupted_run() -> None:
    items = _stream(4)
    whole, split = CFG.build(None), CFG.build(None)
    half = len(items) * 3 // 4
    for item in items[:half]:
        whole.on_item(replace(item))
        split.on_item(replace(item))
    resumed = CFG.build(split.snapshot())
    for item in items[half:]:
        assert whole.on_item(replace(item))[0][0].scores == resumed.on_item(replace(item))[0][0].scores
    stack = whole.report().tasks["churn"]["stack"]
    assert stack["outcomes"] > 200 and stack["weights"] is not None  # the stacks did publish
    assert resumed.report().tasks["churn"]["stack"] == stack
    # Off, the same models publish their own scores: the stack changed them.
    plain = replace(CFG, stack=False).build(whole.snapshot())
    probe = replace(items[-1])
    assert plain.on_item(replace(probe))[0][0].scores != whole.on_item(replace(probe))[0][0].scores


def test_a_snapshot_from_before_the_stacks_still_loads_and_starts_following() -> None:
    logic = CFG.build(None)
    for item in _stream(5)[:400]:
        logic.on_item(replace(item))
    state = logic.state
    del state.combiner, state.moments  # what an older models step pickled
    old = encode_state(state)
    resumed = CFG.build(old)
    assert resumed.state.combiner.stacks["churn"].outcomes == 0 and not resumed.state.moments.followed
    for item in _stream(5)[400:]:
        scores = resumed.on_item(replace(item))[0][0].scores
        assert 0.0 <= scores["churn_risk"] <= 1.0
    assert resumed.state.moments.followed
    assert decode_state(encode_state(resumed.state), type(resumed.state)).combiner.stacks["churn"].outcomes == resumed.state.combiner.stacks["churn"].outcomes


def test_asking_whether_a_customer_is_followed_does_not_follow_them() -> None:
    moments = GridMoments()
    assert not moments.is_followed("u1")
    assert moments.follows("u1") and moments.is_followed("u1")
    assert not moments.is_followed("u2") and len(moments.followed) == 1
