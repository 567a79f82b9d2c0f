"""Judge the models against ground truth: exact AUCs, baselines, cluster agreement.

A replay's final profiles hold each user's scores as of the replay's last
event time; the generator's truth file says what each user did afterwards
(purchased within the horizon, came back or not) and which persona they were
drawn from. This module compares the two, next to naive baselines that any
model must beat: recency alone and past purchases alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["roc_auc", "adjusted_rand_index", "read_truth", "model_quality"]


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Return the exact ROC AUC (ties count half); ``None`` without both labels.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    >>> roc_auc([1, 1], [True, False])
    0.5
    """
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1
        rank_sum += average_rank * sum(1 for k in order[i : j + 1] if labels[k])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def adjusted_rand_index(truth: Sequence[Any], found: Sequence[Any]) -> float | None:
    """Return the adjusted Rand index of two labellings of the same items.

    >>> adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 0, 0])
    1.0
    >>> round(adjusted_rand_index(["a", "a", "b", "b"], [1, 0, 1, 0]), 3)
    -0.5
    """
    n = len(truth)
    if n < 2:
        return None

    def pairs(count: int) -> float:
        return count * (count - 1) / 2

    table = Counter(zip(truth, found, strict=True))
    index = sum(pairs(c) for c in table.values())
    rows = sum(pairs(c) for c in Counter(truth).values())
    cols = sum(pairs(c) for c in Counter(found).values())
    expected = rows * cols / pairs(n)
    best = (rows + cols) / 2
    if best == expected:
        return 1.0 if index == expected else 0.0
    return (index - expected) / (best - expected)


def read_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Return the generator's ground truth, by user id."""
    with path.open("rb") as fh:
        rows = (orjson.loads(line) for line in fh if line.strip())
        return {row["user_id"]: row for row in rows}


def _auc(rows: list[tuple[dict[str, Any], dict[str, Any]]], score: Callable[[dict[str, Any]], float], label: Callable[[dict[str, Any]], bool]) -> float | None:
    auc = roc_auc([score(p) for p, _ in rows], [label(t) for _, t in rows])
    return None if auc is None else round(auc, 4)


def _days(value: Any, missing: float = 1e6) -> float:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def model_quality(profiles: Path, truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return AUCs (model and baselines) and cluster agreement for users in both files."""
    rows = []
    with profiles.open("rb") as fh:
        for line in fh:
            profile = orjson.loads(line)
            known = truth.get(profile["user_id"])
            if known is not None and profile.get("purchase_propensity") is not None:
                rows.append((profile, known))
    if not rows:
        return {"users": 0}

    bought = lambda t: t["purchases_in_horizon"] > 0  # noqa: E731
    churned = lambda t: bool(t["churned"])  # noqa: E731
    quality: dict[str, Any] = {
        "users": len(rows),
        "propensity": {
            "positive_share": round(sum(bought(t) for _, t in rows) / len(rows), 4),
            "auc": _auc(rows, lambda p: p["purchase_propensity"], bought),
            "baseline_recency_auc": _auc(rows, lambda p: -_days(p.get("recency_days")), bought),
            "baseline_past_purchases_auc": _auc(rows, lambda p: p["purchases_total"], bought),
        },
        "churn": {
            "positive_share": round(sum(churned(t) for _, t in rows) / len(rows), 4),
            "auc": _auc(rows, lambda p: p["churn_risk"], churned),
            "baseline_recency_auc": _auc(rows, lambda p: _days(p.get("days_since_last_seen"), 0.0), churned),
            "baseline_past_purchases_auc": _auc(rows, lambda p: -p["purchases_total"], churned),
        },
    }
    clustered = [(p.get("cluster"), t["persona"]) for p, t in rows if p.get("cluster") is not None]
    if clustered:
        ari = adjusted_rand_index([t for _, t in clustered], [c for c, _ in clustered])
        quality["clusters"] = {
            "users": len(clustered),
            "adjusted_rand_index": None if ari is None else round(ari, 4),
            "personas_by_cluster": _crosstab(clustered),
        }
    return quality


def _crosstab(pairs: list[tuple[Any, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for cluster, persona in pairs:
        table.setdefault(f"cluster:{cluster}", Counter())[persona] += 1
    return {name: dict(counts.most_common()) for name, counts in sorted(table.items())}
