"""One placement's arithmetic for :class:`~operators.clusters.Clusters`: River's, in one pass.

Every placed score (a session's close, a tick, every final row) has the
clusters' scaler learn the point, scales it, finds the nearest centre and
moves that centre towards it. River does it in four interpreted method calls
(``StandardScaler.learn_one`` and ``transform_one``, ``KMeans.predict_one``
and the move in ``learn_predict_one``); these functions do the same
arithmetic on the same dicts, compiled (pyproject's ``compiled`` list), so
the floats, the dicts' contents and key order, and so the pickled state, are
the same (``tests/operators/test_cluster_learning.py`` holds them to River's).
"""

from __future__ import annotations

from typing import Final

from operators.cluster_features import CLUSTER_FEATURES

__all__ = ["learn_scaled", "learn_nearest"]

#: The features a centre is measured over, as a tuple of any length: compiled, a loop over
#: the 10-tuple's own type re-boxes it into a new tuple at every loop (one per centre).
_NAMES: Final[tuple[str, ...]] = CLUSTER_FEATURES

#: The distance every centre beats (a native constant: ``float("inf")`` parses a string per call).
_INF: Final = float("inf")


def learn_scaled(
    counts: dict[str, int], means: dict[str, float], variances: dict[str, float], x: dict[str, float]
) -> dict[str, float]:
    """Learn ``x`` into a StandardScaler's running counts, means and variances; return ``x`` scaled.

    ``StandardScaler.learn_one(x)`` then ``transform_one(x)`` (no window, with the
    standard deviation): each feature's figures depend on that feature alone, so learning
    and scaling it in one pass gives the same floats. ``counts`` is a plain dict (the
    clusters' scaler, :func:`operators.clusters.new_scaler`; River's ``Counter`` works too),
    ``means`` and ``variances`` River's ``defaultdict(float)``: a missing name reads 0 (and the
    defaultdicts insert it, in the same order as River's reads).
    """
    scaled: dict[str, float] = {}
    for name, xi in x.items():
        # (A plain dict: a Counter's Python __delitem__ sent every assignment through a
        # Python-level slot, about 1,000 instructions; models22.)
        n = counts.get(name, 0) + 1
        counts[name] = n
        old_mean = means[name]
        mean = old_mean + (xi - old_mean) / n
        means[name] = mean
        old_var = variances[name]
        var = old_var + ((xi - old_mean) * (xi - mean) - old_var) / n
        variances[name] = var
        scaled[name] = (xi - mean) / var**0.5 if var else 0.0
    return scaled


def learn_nearest(centers: dict[int, dict[str, float]], halflife: float, x: dict[str, float]) -> int:
    """Return the index of the centre nearest ``x`` and move that centre ``halflife`` of the way to it.

    ``clusters._KMeans.predict_one`` (squared distance over :data:`CLUSTER_FEATURES`, a
    missing feature of ``x`` read as 0, the first centre on ties), then River's move in
    ``KMeans.learn_predict_one`` over ``x``'s features. A centre is a plain dict holding
    every feature once seeded (:func:`operators.clusters.plain_centres`: read in C, not
    through the generic look-up), or River's ``defaultdict``: a name it lacks is drawn by
    its factory at the first read, as River's ``+=`` does.
    """
    # x's values in feature order, read once for every centre (x is a plain dict: reading
    # it has no effect, so the centres' reads, which may draw a missing name, keep their order).
    point = [x.get(name, 0.0) for name in _NAMES]
    best = 0
    best_distance = _INF
    for index, centre in centers.items():
        distance = 0.0
        i = 0
        for name in _NAMES:
            diff = centre[name] - point[i]
            distance += diff * diff
            i += 1
        if distance < best_distance:
            best = index
            best_distance = distance
    centre = centers[best]
    for name, xi in x.items():
        at = centre[name]
        centre[name] = at + halflife * (xi - at)
    return best
