"""Models: they learn, honestly measured; a prior scores first; snapshots resume to the same scores; clusters keep their ids."""

from __future__ import annotations

import random
from dataclasses import replace

from journeyflow.step_records import UserUpdate
from operators.cluster_features import CLUSTER_FEATURES
from operators.clusters import Clusters, silhouette
from operators.features import CLASSIFIER_FEATURES, PRIOR_STATS, pack, pack_rows
from operators.labels import Example
from operators.models import _SHUFFLE, ModelConfig, ModelLogic, Task

CFG = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)


def _vector(rng: random.Random, positive: bool) -> dict[str, float]:
    base = {name: rng.gauss(0, 1) for name in CLASSIFIER_FEATURES}
    # A signal in two features, noise elsewhere: learnable, not trivial.
    base["days_since_last_seen"] += 1.5 if positive else -1.5
    base["engagement"] += -1.0 if positive else 1.0
    age = rng.uniform(10, 60)
    sessions = float(rng.randrange(0, 12))
    base.update(
        bg_sessions_x=sessions,
        bg_sessions_tx=rng.uniform(0, age) if sessions else 0.0,
        bg_purchases_x=float(rng.randrange(0, 3)),
        bg_purchases_tx=0.0,
        bg_age=age,
    )
    assert set(base) == set(CLASSIFIER_FEATURES + PRIOR_STATS)
    return base


def _update(user: str, vector: dict[str, float] | None, examples: tuple = (), kind: str = "update", ts_ms: int = 0) -> UserUpdate:
    vectors = None if vector is None else pack_rows((vector,) * 5)
    return UserUpdate(user, ts_ms, kind, "event", None, (), {}, features=vectors, examples=examples)


def _feed(logic: ModelLogic, rng: random.Random, n: int) -> None:
    for i in range(n):
        label = rng.random() < 0.4
        example = Example("churn", i, pack(_vector(rng, label)), label)
        logic.on_item(_update(f"u{i % 300}", None, (example,)))


def test_the_churn_model_learns_and_reports_an_honest_auc() -> None:
    rng = random.Random(7)
    logic = CFG.build(None)
    _feed(logic, rng, 1500 + _SHUFFLE)
    report = logic.report().tasks["churn"]
    assert report["examples"] == 1500  # the rest wait in the shuffle buffer
    assert report["progressive_auc"] > 0.8
    assert report["prior"]["customers"] == 300 and report["prior"]["fits"] >= 1
    # And the published risk separates fresh users of each kind.
    # (a week later: the blend weighs by the losses judged as the week starts)
    high = logic.on_item(_update("a", _vector(rng, True), ts_ms=CFG.interval_ms))[0][0].scores["churn_risk"]
    low = logic.on_item(_update("b", _vector(rng, False), ts_ms=CFG.interval_ms))[0][0].scores["churn_risk"]
    assert high > 0.6 > 0.4 > low


def test_untrained_models_have_no_auc_rather_than_a_made_up_one() -> None:
    report = CFG.build(None).report().tasks
    assert report["churn"]["progressive_auc"] is None and report["propensity"]["progressive_auc"] is None


def test_a_restored_snapshot_gives_the_same_scores_as_an_uninterrupted_run() -> None:
    rng = random.Random(3)
    examples = [Example("churn", i, pack(_vector(rng, i % 3 == 0)), i % 3 == 0) for i in range(1600)]
    probes = [_vector(rng, rng.random() < 0.5) for _ in range(20)]
    whole = CFG.build(None)
    split = CFG.build(None)
    for i, example in enumerate(examples[:800]):
        whole.on_item(_update(f"u{i % 100}", None, (example,)))
        split.on_item(_update(f"u{i % 100}", None, (example,)))
    resumed: ModelLogic = CFG.build(split.snapshot())
    for i, example in enumerate(examples[800:]):
        whole.on_item(_update(f"u{i % 100}", None, (example,)))
        resumed.on_item(_update(f"u{i % 100}", None, (example,)))
    for probe in probes:
        a = whole.on_item(_update("p", dict(probe)))[0][0].scores
        b = resumed.on_item(_update("p", dict(probe)))[0][0].scores
        assert a == b and "churn_risk" in a


def test_no_scores_before_the_prior_is_fitted_then_the_prior_alone_until_enough_examples() -> None:
    rng = random.Random(5)
    logic = replace(CFG, min_examples=100).build(None)
    probe = _vector(rng, True)
    assert logic.on_item(_update("a", dict(probe)))[0][0].scores == {"model_version": "m0"}
    _feed(logic, rng, 50)  # 50 customers: the prior is fitted, no example learned yet
    scores = logic.on_item(_update("a", dict(probe)))[0][0].scores
    assert 0.0 < scores["churn_risk"] < 1.0 and 0.0 < scores["purchase_propensity"] < 1.0
    report = logic.report().tasks
    assert report["churn"]["trust"] == 0.0 and report["churn"]["prior"]["params"] is not None


def test_the_score_leans_on_the_prior_when_the_learned_model_does_worse_recently() -> None:
    task = Task.new(0.05)
    task.examples = 1000
    task.mix_losses = [450.0] * len(task.mix_losses)  # no mixture of the two did better
    task.loss, task.prior_loss = 400.0, 380.0  # the learned model lost 20 nats to the prior
    assert task.trust(min_examples=500) < 0.001
    task.loss, task.prior_loss = 380.0, 400.0
    assert task.trust(min_examples=500) > 0.999
    assert task.trust(min_examples=2000) == 0.0  # not enough examples yet: the prior alone


def test_an_erased_user_leaves_the_prior_sample() -> None:
    rng = random.Random(9)
    logic = CFG.build(None)
    _feed(logic, rng, 60)
    assert logic.report().tasks["churn"]["prior"]["customers"] == 60
    logic.on_item(_update("u7", None, kind="erase"))
    assert logic.report().tasks["churn"]["prior"]["customers"] == 59


def _blobs(rng: random.Random, n: int) -> list[tuple[int, dict[str, float]]]:
    centres = [0.0, 4.0, 8.0]
    points = []
    for _ in range(n):
        which = rng.randrange(3)
        points.append((which, {name: centres[which] + rng.gauss(0, 0.3) for name in CLUSTER_FEATURES}))
    return points


def test_clusters_separate_clear_groups_and_keep_their_ids_while_learning() -> None:
    rng = random.Random(11)
    clusters = Clusters(k=3, halflife=0.05, seed=2, warmup=60)
    points = _blobs(rng, 600)
    for _, x in points[:300]:
        clusters.learn_predict(x, learn=True)
    probes = _blobs(rng, 60)
    before = [clusters.learn_predict(x, learn=False) for _, x in probes]
    for _, x in points[300:]:
        clusters.learn_predict(x, learn=True)
    after = [clusters.learn_predict(x, learn=False) for _, x in probes]
    assert before == after  # no relabelling as the model learns
    mapping = {}
    for (group, _), found in zip(probes, after, strict=True):
        mapping.setdefault(group, set()).add(found)
    assert all(len(found) == 1 for found in mapping.values()) and len(set().union(*mapping.values())) == 3
    assert clusters.silhouette() > 0.8
    described = clusters.describe()
    assert [c["cluster"] for c in described] == [0, 1, 2]
    assert sorted(round(c["centre"]["conversion_rate"]) for c in described) == [0, 4, 8]


def test_clusters_say_nothing_during_warm_up() -> None:
    clusters = Clusters(k=3, halflife=0.05, seed=2, warmup=10)
    assert clusters.learn_predict({name: 1.0 for name in CLUSTER_FEATURES}, learn=True) is None


def test_silhouette_of_a_single_cluster_is_undefined() -> None:
    assert silhouette([{"basket": 1.0}, {"basket": 2.0}], [0, 0]) is None


def test_the_churn_risk_is_never_below_what_the_silence_so_far_says() -> None:
    import math

    from operators.silence import MIN_BAND

    rng = random.Random(13)
    logic = CFG.build(None)
    _feed(logic, rng, 300)  # the prior is fitted; the learned model knows nothing of long silences
    for i in range(MIN_BAND * 3):
        # Customers silent for five weeks or more never came back the next week.
        v = _vector(rng, False)
        v["days_since_last_seen"] = math.log1p(40.0 + i % 10)
        logic.on_item(_update(f"s{i}", None, (Example("churn", i, pack(v), True),)))
    probe = _vector(rng, False)  # features of a customer the learned model thinks stays
    probe["days_since_last_seen"] = math.log1p(45.0)
    scores = logic.on_item(_update("p", probe))[0][0].scores
    curve = logic.report().tasks["churn"]["silence_curve"]
    assert curve[6] > 0.9 and curve[12] is not None  # long silences: read from the counts, carried to the last band
    # 45 days silent now, then 52, 59, 66 and 73 (bands 6 to 10, read between their middles), the last week for 2/7.
    silence = logic.state.silence
    chances = [silence.quiet_after((45.0 + 7 * k) / 7) for k in range(5)]
    assert None not in chances
    floor = math.prod(q**w for q, w in zip(chances, (1, 1, 1, 1, 2 / 7), strict=True))  # type: ignore[operator]
    assert scores["churn_risk"] >= round(floor, 4) - 2e-4
