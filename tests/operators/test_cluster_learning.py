"""A placement's compiled arithmetic against River's: the same floats, the same state."""

from __future__ import annotations

import pickle
import random

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
    # Clusters.learn_predict as it was: River's four calls.
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
    for point in _points(900, 5):
        assert ours.learn_predict(point, learn=True) == rivers(river, point)
    assert pickle.dumps(ours) == pickle.dumps(river)
