"""Shrink to what works: the churn score leans on whichever of the learned chain, the prior and the
silence floor did best on recent examples, each judged before it learned them."""

from __future__ import annotations

import dataclasses
import math
import random

from journeyflow.step_records import UserUpdate
from operators.features import CLASSIFIER_FEATURES, pack, pack_rows
from operators.labels import Example
from operators.model_trust import LOSS_DECAY, churn_shares
from operators.models import ModelConfig, ModelLogic, Task
from operators.odds import log_loss, shares
from operators.weekly import MIXES
from state.serde import decode_state, encode_state

CFG = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)


def _vector(rng: random.Random, days_silent: float) -> dict[str, float]:
    v = {name: rng.gauss(0, 1) for name in CLASSIFIER_FEATURES}
    v["days_since_last_seen"] = math.log1p(days_silent)
    age = 60.0
    v.update(bg_sessions_x=3.0, bg_sessions_tx=max(0.0, age - days_silent), bg_purchases_x=1.0, bg_purchases_tx=10.0, bg_age=age)
    return v


def _feed(logic: ModelLogic, rng: random.Random, n: int) -> None:
    """Churn examples where recency alone decides: silent two weeks or more, gone; less, back."""
    for i in range(n):
        days = rng.uniform(0.0, 40.0)
        example = Example("churn", i * 3_600_000, pack(_vector(rng, days)), days >= 14.0)
        # An hour apart: the blend's weights are kept per week (operators.model_trust.freeze_losses).
        logic.on_item(UserUpdate(f"u{i % 300}", i * 3_600_000, "update", "event", None, (), {}, examples=(example,)))


def test_the_weights_are_a_bayesian_average_of_the_judged_losses() -> None:
    task = Task.new(0.05)
    task.examples = 1000
    task.loss, task.prior_loss, task.mix_losses = 400.0, 380.0, [460.0] * len(MIXES)
    learned, prior, floor = churn_shares(task, 300.0, 500, floor_known=True)
    assert floor > 0.999 and learned < 1e-30 and math.isclose(learned + prior + floor, 1.0)
    # Without a curve the floor is no candidate: the two-model trust of the task, to the last bit.
    learned, prior, floor = churn_shares(task, 300.0, 500, floor_known=False)
    assert (learned, floor) == (task.trust(500), 0.0) and prior == 1.0 - learned
    # Before min_examples the learned chain has no say, whatever its loss.
    task.loss = 0.0
    assert churn_shares(task, 1e6, 2000, floor_known=True) == (0.0, 1.0, 0.0)
    assert shares([1.0, None, 52.0]) == [1.0, 0.0, 0.0]


def test_a_mixture_that_predicted_better_than_both_takes_the_weight_between_them() -> None:
    task = Task.new(0.05)
    # Each is confidently wrong on a third of the examples where the other is right: their even mixture never is.
    for i in range(900):
        learned, prior = (0.05 if i % 3 == 0 else 0.95), (0.05 if i % 3 == 1 else 0.95)
        task.loss = task.loss * LOSS_DECAY + log_loss(learned, True)
        task.prior_loss = task.prior_loss * LOSS_DECAY + log_loss(prior, True)
        task.mix_losses = [m * LOSS_DECAY + log_loss(a * learned + (1 - a) * prior, True) for m, a in zip(task.mix_losses, MIXES, strict=True)]
    task.examples = 900
    assert abs(task.loss - task.prior_loss) < 1.0 and min(task.mix_losses) < task.loss - 50.0
    learned, prior, mixed = task.shares(0)
    assert learned == 0.0 and prior == 0.0 and mixed[MIXES.index(0.5)] > 0.99
    assert math.isclose(task.trust(0), 0.5, abs_tol=0.01)
    # Far behind, the mixtures have no say: the two-model trust, learned + prior = 1.
    task.mix_losses = [task.loss + 60.0] * len(MIXES)
    learned, prior, mixed = task.shares(0)
    assert mixed == (0.0,) * len(MIXES) and learned + prior == 1.0 and task.trust(0) == learned
    assert task.shares(1000) == (0.0, 1.0, (0.0,) * len(MIXES))  # before min_examples, the prior alone


def test_task_learn_judges_each_mixture_on_the_chances_it_mixes_before_learning() -> None:
    task = Task.new(0.05)
    x = {"a": 1.0}
    p = task.predict(x)
    task.learn("propensity", x, True, 0, 0.2)
    assert task.mix_losses == [log_loss(a * p + (1 - a) * 0.2, True) for a in MIXES]


def test_the_floor_is_judged_on_each_example_before_it_counts_it() -> None:
    rng = random.Random(3)
    logic = CFG.build(None)
    _feed(logic, rng, 500)
    expected = logic.state.floor_loss
    v = _vector(rng, 20.0)
    q = logic.state.silence.p_silent(20.0, 7.0, (1.0,), 60.0, 10**10)
    assert q is not None
    logic.on_item(UserUpdate("x", 0, "update", "event", None, (), {}, examples=(Example("churn", 10**10, pack(v), True),)))
    assert math.isclose(logic.state.floor_loss, expected * LOSS_DECAY + log_loss(q, True))


def test_when_recency_alone_does_best_the_published_churn_leans_on_the_floor() -> None:
    rng = random.Random(7)
    logic = CFG.build(None)
    _feed(logic, rng, 3000)
    churn = logic.state.tasks["churn"]
    # The life table reads recency exactly; the learned model, noise in most of its inputs, less well.
    learned, prior, floor = churn_shares(churn, logic.state.floor_loss, 0, floor_known=True)
    assert logic.state.floor_loss < churn.loss and floor > learned and floor > 0.5
    assert logic.report().tasks["churn"]["shares"]["silence_floor"] > 0.5  # summary.json says so
    for days in (2.0, 20.0):
        # Without the floor's say, a customer silent two days would get at least the learned chain's score.
        out, _ = logic.on_item(UserUpdate("p", 0, "update", "event", None, (), {}, features=pack_rows((_vector(rng, days),) * 5)))
        scores = next(iter(out)).scores
        silence = logic.state.silence.p_silent(days, 7.0, logic.scorer.weights["churn"], 60.0, 0)
        assert silence is not None and scores["churn_risk"] == round(silence, 6)


def test_a_snapshot_from_before_the_floor_was_judged_starts_it_as_the_worse_of_the_two() -> None:
    rng = random.Random(5)
    logic = CFG.build(None)
    _feed(logic, rng, 1500)
    state = logic.state
    del state.__dict__["floor_loss"]
    resumed = CFG.build(encode_state(state))
    churn = resumed.state.tasks["churn"]
    assert resumed.state.floor_loss == max(churn.loss, churn.prior_loss)
    assert decode_state(encode_state(resumed.state), type(resumed.state)).floor_loss == resumed.state.floor_loss



def test_the_end_of_input_reports_the_weights_that_scored_its_final_rows_not_those_after_the_buffer() -> None:
    cfg = dataclasses.replace(CFG, min_examples=1000)
    logic = cfg.build(None)
    _feed(logic, random.Random(5), 1500)  # 500 learned, 1,000 waiting in the shuffle buffer
    churn = logic.state.tasks["churn"]
    before = churn_shares(churn, logic.state.floor_loss, cfg.min_examples, floor_known=True)
    trust = churn.trust(cfg.min_examples)
    report = next(iter(logic.on_eof()[0]))
    assert not logic.state.buffer
    assert trust == 0.0 and churn.trust(cfg.min_examples) > 0.5  # the learned model has its say only after the buffer
    assert report.tasks["churn"]["trust"] == round(trust, 4)
    assert list(report.tasks["churn"]["shares"].values()) == [round(w, 4) for w in before]


def test_the_blend_weighs_by_the_losses_judged_as_its_interval_started_until_the_next_one() -> None:
    rng = random.Random(11)
    logic = CFG.build(None)
    _feed(logic, rng, 1500)  # 1,500 hours: the ninth week has begun
    state, week = logic.state, CFG.interval_ms
    assert state.frozen is not None and state.frozen[0] == (1499 * 3_600_000) // week
    frozen = state.frozen
    before = logic.report().tasks["churn"]["shares"]
    # A burst of one label within the same week moves the judged losses, not the weights the scores get.
    ts = 1499 * 3_600_000
    for i in range(300):
        example = Example("churn", ts, pack(_vector(rng, 40.0)), False)  # long silent, yet came back: surprising
        logic.on_item(UserUpdate(f"b{i}", ts, "update", "event", None, (), {}, examples=(example,)))
    assert state.frozen == frozen and state.floor_loss != frozen[3]
    assert logic.report().tasks["churn"]["shares"] == before
    # The next week's first update takes the losses as they are then.
    logic.on_item(UserUpdate("n", (frozen[0] + 1) * week, "update", "event", None, (), {}))
    assert state.frozen == (frozen[0] + 1, state.tasks["churn"].loss, state.tasks["churn"].prior_loss, state.floor_loss)
    assert logic.report().tasks["churn"]["shares"] != before


def test_a_snapshot_from_before_the_weights_were_kept_per_interval_takes_them_at_its_next_update() -> None:
    logic = CFG.build(None)
    _feed(logic, random.Random(5), 500)
    state = logic.state
    del state.__dict__["frozen"]
    resumed = CFG.build(encode_state(state))
    assert resumed.state.frozen is None
    resumed.on_item(UserUpdate("x", 10**9, "update", "event", None, (), {}))
    churn = resumed.state.tasks["churn"]
    assert resumed.state.frozen == (10**9 // CFG.interval_ms, churn.loss, churn.prior_loss, resumed.state.floor_loss)


def test_a_snapshot_from_before_the_mixtures_starts_them_as_the_worse_of_the_two_and_resumes_the_same_scores() -> None:
    logic = CFG.build(None)
    _feed(logic, random.Random(5), 1500)
    for task in logic.state.tasks.values():
        del task.__dict__["mix_losses"]
    resumed = CFG.build(encode_state(logic.state))
    propensity = resumed.state.tasks["propensity"]
    assert propensity.mix_losses == [max(propensity.loss, propensity.prior_loss)] * len(MIXES)
    assert resumed.state.tasks["churn"].mix_losses == []  # churn's blend has no mixtures: nothing to judge
    # Upgraded once, it pickles and resumes as itself: a restart gives the same scores.
    again = CFG.build(encode_state(resumed.state))
    rows = pack_rows((_vector(random.Random(1), 3.0),) * 5)
    scored = [next(iter(m.on_item(UserUpdate("p", 1500 * 3_600_000, "update", "event", None, (), {}, features=rows))[0])).scores for m in (resumed, again)]
    assert scored[0] == scored[1] and again.state.tasks["propensity"].mix_losses == resumed.state.tasks["propensity"].mix_losses


def test_churn_judges_no_mixtures_and_a_state_that_judged_them_drops_them_with_the_same_scores() -> None:
    logic = CFG.build(None)
    _feed(logic, random.Random(5), 1500)
    churn = logic.state.tasks["churn"]
    assert churn.examples > 0 and churn.mix_losses == [] and churn.shares(0)[2] == ()
    assert churn.trust(0) == churn.shares(0)[0]  # the two-model trust: no mixtures to count
    # A state of the eleventh follow-up judged churn's mixtures, which no score read.
    churn.mix_losses = [1.0, 2.0, 3.0]
    rows = pack_rows((_vector(random.Random(1), 3.0),) * 5)
    update = UserUpdate("p", 1500 * 3_600_000, "update", "event", None, (), {}, features=rows)
    old = CFG.build(encode_state(logic.state))
    assert old.state.tasks["churn"].mix_losses == []
    scores = [next(iter(m.on_item(dataclasses.replace(update))[0])).scores for m in (logic, old)]
    assert scores[0] == scores[1] and scores[0]["churn_risk"] is not None
