"""Models: they learn, honestly measured; snapshots resume to the same scores; clusters keep their ids."""

from __future__ import annotations

import random

from journeyflow.records import UserUpdate
from operators.clusters import Clusters, silhouette
from operators.features import CLASSIFIER_FEATURES, CLUSTER_FEATURES, pack
from operators.labels import Example
from operators.models import ModelConfig, ModelLogic

CFG = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)


def _features(rng: random.Random, positive: bool) -> dict[str, float]:
    base = {name: rng.gauss(0, 1) for name in CLASSIFIER_FEATURES}
    # A signal in two features, noise elsewhere: learnable, not trivial.
    base["days_since_last_seen"] += 1.5 if positive else -1.5
    base["engagement"] += -1.0 if positive else 1.0
    return base


def _update(user: str, features: dict[str, float] | None, examples: tuple = ()) -> UserUpdate:
    return UserUpdate(user, 0, "update", "event", None, (), {}, features=features, examples=examples)


def _examples(rng: random.Random, n: int) -> list[Example]:
    out = []
    for i in range(n):
        label = rng.random() < 0.4
        out.append(Example("churn", i, pack(_features(rng, label)), label))
    return out


def test_the_churn_model_learns_and_reports_an_honest_auc() -> None:
    rng = random.Random(7)
    logic = CFG.build(None)
    for example in _examples(rng, 1500):
        logic.on_item(_update("u", None, (example,)))
    report = logic.report().tasks["churn"]
    assert report["examples"] == 1500
    assert report["progressive_auc"] > 0.8
    # And scores separate fresh users of each kind.
    high = logic.on_item(_update("a", _features(rng, True)))[0][0].scores["churn_risk"]
    low = logic.on_item(_update("b", _features(rng, False)))[0][0].scores["churn_risk"]
    assert high > 0.6 > 0.4 > low


def test_untrained_models_have_no_auc_rather_than_a_made_up_one() -> None:
    report = CFG.build(None).report().tasks
    assert report["churn"]["progressive_auc"] is None and report["propensity"]["progressive_auc"] is None


def test_a_restored_snapshot_gives_the_same_scores_as_an_uninterrupted_run() -> None:
    rng = random.Random(3)
    examples = _examples(rng, 400)
    probes = [_features(rng, rng.random() < 0.5) for _ in range(20)]
    whole = CFG.build(None)
    split = CFG.build(None)
    for example in examples[:200]:
        whole.on_item(_update("u", None, (example,)))
        split.on_item(_update("u", None, (example,)))
    resumed: ModelLogic = CFG.build(split.snapshot())
    for example in examples[200:]:
        whole.on_item(_update("u", None, (example,)))
        resumed.on_item(_update("u", None, (example,)))
    for probe in probes:
        a = whole.on_item(_update("p", dict(probe)))[0][0].scores
        b = resumed.on_item(_update("p", dict(probe)))[0][0].scores
        assert a == b


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


def test_no_scores_until_the_models_have_learned_enough() -> None:
    from dataclasses import replace

    rng = random.Random(5)
    logic = replace(CFG, min_examples=100).build(None)
    probe = _features(rng, True)
    assert logic.on_item(_update("a", dict(probe)))[0][0].scores == {"model_version": "m0"}
    for example in _examples(rng, 100):
        logic.on_item(_update("u", None, (example,)))
    scores = logic.on_item(_update("a", dict(probe)))[0][0].scores
    assert "churn_risk" in scores  # learned enough (100 churn examples)
    assert "purchase_propensity" not in scores  # no propensity example yet
