"""A placement's compiled arithmetic against River's: the same floats, the same state."""

from __future__ import annotations

import functools
import pickle
import random
from collections import Counter, defaultdict
from typing import Any

from river import cluster, preprocessing

from operators.cluster_features import CLUSTER_FEATURES
from operators.cluster_learning import learn_nearest, learn_scaled
from operators.clusters import Clusters, _KMeans


def _points(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        # Repeated values (a variance of 0 at first), zeros, a wide spread, and now and then an int.
        point: dict[str, float] = {}
        for name in CLUSTER_FEATURES:
            roll = rng.random()
            point[name] = 0.0 if roll < 0.2 else 1 if roll < 0.25 else rng.lognormvariate(0.0, 2.0)
        points.append(point)
    return points


def test_learning_and_scaling_in_one_pass_is_rivers_learn_one_then_transform_one() -> None:
    river, ours = preprocessing.StandardScaler(), preprocessing.StandardScaler()
    for point in _points(500, 1):
        river.learn_one(point)
        expected = river.transform_one(point)
        got = learn_scaled(ours.counts, ours.means, ours.vars, point)
        assert list(got.items()) == list(expected.items())
    assert pickle.dumps(ours) == pickle.dumps(river)


def test_the_nearest_centre_moves_as_rivers_learn_predict_one_moves_it() -> None:
    river, ours = _KMeans(n_clusters=6, halflife=0.005, seed=3), _KMeans(n_clusters=6, halflife=0.005, seed=3)
    # Half the centres seeded on every feature, half left to their factory (drawn at the first read).
    for index, point in enumerate(_points(3, 2)):
        river.centers[index].update(point)
        ours.centers[index].update(point)
    for point in _points(400, 4):
        assert learn_nearest(ours.centers, ours.halflife, point) == cluster.KMeans.learn_predict_one(river, point)
    assert pickle.dumps(ours) == pickle.dumps(river)


def test_clusters_learn_the_same_state_as_before() -> None:
    # Clusters.learn_predict as it was: River's four calls, on River's own scaler (its counts a Counter).
    def rivers(clusters: Clusters, x: dict[str, float]) -> int | None:
        clusters.scaler.learn_one(x)
        scaled = clusters.scaler.transform_one(x)
        if clusters.model is None:
            clusters.pending.append(scaled)
            if len(clusters.pending) >= clusters.warmup:
                clusters._start()
            return None
        found = clusters.model.learn_predict_one(scaled)
        clusters.learned += 1
        clusters._keep(scaled, found)
        clusters.assigned[found] += 1
        return found

    river, ours = Clusters(k=6, halflife=0.005, seed=42), Clusters(k=6, halflife=0.005, seed=42)
    river.scaler = preprocessing.StandardScaler()
    for point in _points(900, 5):
        assert ours.learn_predict(point, learn=True) == rivers(river, point)
    # The same state, the counts and the centres in plain dicts (models22): the same items in the same order.
    assert type(ours.scaler.counts) is dict
    assert ours.model is not None and all(type(centre) is dict for centre in ours.model.centers.values())
    assert list(ours.scaler.counts.items()) == list(river.scaler.counts.items())
    river.scaler.counts = dict(river.scaler.counts)
    assert pickle.dumps(ours) == pickle.dumps(river)


def test_clusters_pickled_with_rivers_containers_load_as_plain_dicts_and_learn_the_same() -> None:
    # The form pickled before models22 (the test above: the same state in River's containers):
    # the scaler's counts a Counter, the centres River's defaultdicts.
    ours = Clusters(k=6, halflife=0.005, seed=42)
    points = _points(700, 6)
    for point in points[:400]:
        ours.learn_predict(point, learn=True)
    old = pickle.loads(pickle.dumps(ours))
    old.scaler.counts = Counter(old.scaler.counts)
    old.model.centers = {i: _with_factory(old.model, c) for i, c in old.model.centers.items()}
    old_form = pickle.dumps(old)
    assert b"Counter" in old_form and b"defaultdict" in old_form
    resumed = pickle.loads(old_form)
    assert type(resumed.scaler.counts) is dict
    assert all(type(centre) is dict for centre in resumed.model.centers.values())
    assert _state(resumed) == _state(ours)
    for point in points[400:]:
        assert resumed.learn_predict(point, learn=True) == ours.learn_predict(point, learn=True)
        assert resumed.learn_predict(point, learn=False) == ours.learn_predict(point, learn=False)
    assert _state(resumed) == _state(ours)


def _state(clusters: Clusters) -> dict[str, Any]:
    """Every field: River's objects and the generator as pickled, the rest as values (a pickle's
    round trip shares the reservoir's objects differently, whatever their types)."""
    return {k: pickle.dumps(v) if k in ("scaler", "model", "_rng") else v for k, v in vars(clusters).items()}


def _with_factory(model: _KMeans, centre: dict[str, float]) -> Any:
    """A centre as River makes it: a defaultdict drawing from the model's generator."""
    made = defaultdict(functools.partial(model._rng.gauss, model.mu, model.sigma))
    made.update(centre)
    return made
