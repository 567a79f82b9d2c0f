"""Learned segments: River's incremental k-means over scaled behaviour vectors.

River's :class:`~river.cluster.KMeans` moves the closest centre a fixed share
(``halflife``) towards each point. Its centres start at random positions, and
a centre that starts far from every user never wins a point: a dead cluster.
So the first ``warmup`` points are kept and the centres are seeded from them
with k-means++ (seeded, deterministic); from then on River learns online.

Cluster ids never change meaning: a centre keeps its index for life, so
``cluster:3`` today is the drifted ``cluster:3`` of yesterday, not a new
labelling. Points are scaled by River's online :class:`StandardScaler`, and
:meth:`Clusters.describe` reports each centre back in the features' own
units (see :mod:`operators.features`).

A reservoir of recent points (bounded) gives the silhouette in reports.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import cluster, preprocessing

from operators.cluster_features import CLUSTER_FEATURES, describe
from operators.cluster_learning import learn_nearest, learn_scaled

__all__ = ["Clusters", "new_scaler", "plain_centres", "silhouette"]


def _matrix(points: list[dict[str, float]]) -> np.ndarray:
    return np.array([[p.get(k, 0.0) for k in CLUSTER_FEATURES] for p in points], dtype=float)


def _kmeans_plus_plus(points: list[dict[str, float]], k: int, rng: random.Random) -> list[dict[str, float]]:
    """Pick ``k`` starting centres among ``points``, far apart (k-means++, seeded)."""
    xs = _matrix(points)
    chosen = [rng.randrange(len(points))]
    nearest = ((xs - xs[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < k:
        total = float(nearest.sum())
        if total == 0:
            chosen.append(rng.randrange(len(points)))
        else:
            chosen.append(rng.choices(range(len(points)), weights=nearest.tolist())[0])
        nearest = np.minimum(nearest, ((xs - xs[chosen[-1]]) ** 2).sum(axis=1))
    return [dict(points[i]) for i in chosen]


def new_scaler() -> preprocessing.StandardScaler:
    """Return River's StandardScaler (no window, with the standard deviation) whose counts are a plain dict.

    Only :func:`~operators.cluster_learning.learn_scaled` learns into it (River's
    ``learn_one`` would need its ``Counter``): a ``Counter``'s Python-level
    ``__delitem__`` sent every count's assignment through a slow slot. The counts,
    means and variances are River's otherwise (the same numbers in the same order).
    """
    made = preprocessing.StandardScaler()
    made.counts = {}  # type: ignore[assignment]  # (River types it a Counter; learn_scaled takes any dict)
    return made


def plain_centres(centers: dict[int, Any]) -> dict[int, Any]:
    """Return ``centers`` with each centre that holds every cluster feature as a plain dict.

    River's centres are ``defaultdict``s that draw a missing feature from the model's
    random generator at its first read. A centre that holds every feature never draws
    (every point has the ten features, :func:`~operators.cluster_features.cluster_features`),
    so a plain dict of the same items behaves the same, and compiled code reads it in C
    (:func:`~operators.cluster_learning.learn_nearest`). A centre that lacks one keeps its factory.
    """
    return {
        index: dict(centre) if type(centre) is not dict and all(name in centre for name in CLUSTER_FEATURES) else centre
        for index, centre in centers.items()
    }


class _KMeans(cluster.KMeans):
    """River's KMeans, measuring distance over the known features only.

    River's ``predict_one`` builds the union of a centre's and the point's
    keys for every centre and every point, which dominates its cost here
    where every point has the same ten features. Same squared Euclidean
    distance, same argmin (first centre on ties); learning is River's.
    """

    def predict_one(self, x: dict[str, float]) -> int:  # type: ignore[override]
        best, best_distance = 0, math.inf
        for index, centre in self.centers.items():
            distance = 0.0
            for name in CLUSTER_FEATURES:
                diff = centre[name] - x.get(name, 0.0)
                distance += diff * diff
            if distance < best_distance:
                best, best_distance = index, distance
        return best


@dataclass
class Clusters:
    """Online clusters with stable ids; see the module docstring."""

    k: int
    halflife: float
    seed: int
    warmup: int = 200
    sample_size: int = 400
    # River's defaults (no window, with the standard deviation): what learn_scaled computes.
    scaler: preprocessing.StandardScaler = field(default_factory=new_scaler, init=False)
    model: _KMeans | None = None
    pending: list[dict[str, float]] = field(default_factory=list)
    sample: list[tuple[dict[str, float], int]] = field(default_factory=list)
    learned: int = 0
    assigned: Counter[int] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore pickled clusters; those pickled before models22 (the scaler's counts a ``Counter``,
        the centres ``defaultdict``s) are upgraded to the plain dicts of the same items."""
        counts = state["scaler"].counts
        if type(counts) is not dict:
            state["scaler"].counts = dict(counts)
        model = state.get("model")
        if model is not None:
            model.centers = plain_centres(model.centers)
        self.__dict__.update(state)

    def learn_predict(self, x: dict[str, float], *, learn: bool) -> int | None:
        """Return the cluster of ``x`` (``None`` during warm-up); learn from it if ``learn``.

        Learning takes River's arithmetic in one compiled pass (:mod:`operators.cluster_learning`:
        the same floats and state): every placed score comes here, a tick's and every final row's.
        """
        scaler = self.scaler
        if learn:
            scaled = learn_scaled(scaler.counts, scaler.means, scaler.vars, x)
        else:
            scaled = scaler.transform_one(x)
        if self.model is None:
            if learn:
                self.pending.append(scaled)
                if len(self.pending) >= self.warmup:
                    self._start()
            return None
        if learn:
            # (River types its centres as defaultdicts of anything; they hold floats by name.
            # Not typing.cast: a function call for every placement.)
            centers: dict[int, dict[str, float]] = self.model.centers  # type: ignore[assignment]
            found = learn_nearest(centers, self.model.halflife, scaled)
            self.learned += 1
            self._keep(scaled, found)
        else:
            found = self.model.predict_one(scaled)
        self.assigned[found] += 1
        return found

    def _start(self) -> None:
        model = _KMeans(n_clusters=self.k, halflife=self.halflife, seed=self.seed)
        for index, centre in enumerate(_kmeans_plus_plus(self.pending, self.k, self._rng)):
            model.centers[index].update(centre)
        model.centers = plain_centres(model.centers)
        self.model = model
        for point in self.pending:
            self._keep(point, model.learn_predict_one(point))
        self.learned += len(self.pending)
        self.pending = []

    def _keep(self, point: dict[str, float], found: int) -> None:
        # Reservoir sampling: every point learned so far is equally likely to be kept.
        if len(self.sample) < self.sample_size:
            self.sample.append((point, found))
            return
        slot = self._rng.randrange(self.learned + 1)
        if slot < self.sample_size:
            self.sample[slot] = (point, found)

    def describe(self) -> list[dict[str, Any]]:
        """Return each cluster's centre in the features' own units, and its assignments."""
        if self.model is None:
            return []
        means = self.scaler.means
        stds = {name: math.sqrt(v) if v > 0 else 1.0 for name, v in self.scaler.vars.items()}
        out = []
        for index, centre in sorted(self.model.centers.items()):
            raw = {name: centre.get(name, 0.0) * stds.get(name, 1.0) + means.get(name, 0.0) for name in CLUSTER_FEATURES}
            out.append({"cluster": index, "centre": describe(raw), "assignments": self.assigned.get(index, 0)})
        return out

    def silhouette(self) -> float | None:
        """Return the mean silhouette of the reservoir sample, re-assigned to today's centres."""
        if self.model is None or len(self.sample) < 3:
            return None
        points = [p for p, _ in self.sample]
        labels = [self.model.predict_one(p) for p in points]
        return silhouette(points, labels)


def silhouette(points: list[dict[str, float]], labels: list[int]) -> float | None:
    """Return the mean silhouette coefficient of labelled points (Euclidean).

    >>> pts = [{"purchases_90d": x} for x in (0.0, 0.1, 5.0, 5.1)]
    >>> round(silhouette(pts, [0, 0, 1, 1]), 2)
    0.98
    """
    if len(set(labels)) < 2:
        return None
    xs = _matrix(points)
    distances = np.sqrt(((xs[:, None, :] - xs[None, :, :]) ** 2).sum(axis=2))
    ys = np.array(labels)
    scores = []
    for i, own in enumerate(ys):
        same = ys == own
        same[i] = False
        if not same.any():
            scores.append(0.0)  # a point alone in its cluster scores 0 by convention
            continue
        a = distances[i, same].mean()
        b = min(distances[i, ys == other].mean() for other in set(labels) if other != own)
        scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return float(np.mean(scores))
