"""Judge the models against ground truth: AUC and calibration next to naive baselines.

A replay's final profiles hold each user's scores as of the replay's last
event time; the ground truth (the generator's, or a real log's future) says
what each user did in the horizon after it (bought, came back or not) and,
for generated users, their persona. This module compares the two, next to
the naive baselines any model must beat, each computed from the same final
profile:

* recency alone: days since the last visit (churn), since the last purchase
  (propensity; never bought ranks last);
* frequency alone: sessions (churn, fewer is riskier), purchases (propensity);
* BG/NBD alone: the prior of :mod:`operators.bgnbd`, fitted here in one batch
  to the final profiles (over sessions for churn, purchases for propensity).

Calibration: the Brier score (mean squared error of the probability; lower is
better; always predicting the base rate scores ``share * (1 - share)``) and
reliability bins (users grouped by predicted probability in tenths, each
bin's mean prediction next to the share that really had the outcome) and,
when the truth names personas (generated data), the mean score next to the
observed share of each persona (``by_persona``): where a gap comes from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from journeyflow.quality_metrics import MIN_BIN_USERS, adjusted_rand_index, brier, margin_sd, reliability, reliability_gap_sd, roc_auc
from operators import bgnbd

__all__ = [
    "roc_auc",
    "margin_sd",
    "brier",
    "reliability",
    "reliability_gap_sd",
    "by_group",
    "adjusted_rand_index",
    "read_truth",
    "judge",
    "model_quality",
    "MIN_BIN_USERS",
]

def read_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Return the ground truth (one JSON object per user: ``churned``, ``purchases_in_horizon``, ...), by user id."""
    with path.open("rb") as fh:
        rows = (orjson.loads(line) for line in fh if line.strip())
        return {row["user_id"]: row for row in rows}


def _days(value: Any, missing: float) -> float:
    return missing if value is None or value < 0 else float(value)


def _bgnbd_chances(profiles: list[dict[str, Any]], horizon_days: float) -> tuple[list[float], list[float], dict[str, dict[str, float]]]:
    """Return each profile's BG/NBD chance of no session, and of a purchase, within the horizon, and the fitted parameters."""
    age = np.array([_days(p.get("days_since_first_seen"), 0.0) for p in profiles])
    seen = np.array([_days(p.get("days_since_last_seen"), 0.0) for p in profiles])
    bought = np.array([_days(p.get("recency_days"), -1.0) for p in profiles])
    sx = np.array([max(0, p["sessions_total"] - 1) for p in profiles], dtype=float)
    stx = np.where(sx > 0, np.maximum(age - seen, 0.0), 0.0)
    px = np.array([p["purchases_total"] for p in profiles], dtype=float)
    ptx = np.where(bought >= 0, np.maximum(age - bought, 0.0), 0.0)
    sessions = bgnbd.fit(sx, stx, age)
    purchases = bgnbd.fit(px, ptx, age)
    quiet = [bgnbd.p_none(sessions, *v, horizon_days) for v in zip(sx, stx, age, strict=True)]
    buy = [1.0 - bgnbd.p_none(purchases, *v, horizon_days) for v in zip(px, ptx, age, strict=True)]
    # Next to the models step's own fits (its report's "prior"): how far the online prior is from a batch fit.
    params = {name: {k: round(getattr(m, k), 4) for k in ("r", "alpha", "a", "b")} for name, m in (("sessions", sessions), ("purchases", purchases))}
    return quiet, buy, params


def by_group(scores: Sequence[float], labels: Sequence[bool], groups: Sequence[str | None]) -> dict[str, dict[str, Any]]:
    """Return each group's users, mean score and observed share (groups of ``None`` left out).

    Where a reliability gap comes from: a bin's gap can be two groups that
    the score mixes (generated personas), one over- and one under-predicted.

    >>> by_group([0.2, 0.4, 0.9], [False, True, True], ["a", "a", None])
    {'a': {'users': 2, 'mean_score': 0.3, 'observed': 0.5}}
    """
    members: dict[str, list[tuple[float, bool]]] = {}
    for score, label, group in zip(scores, labels, groups, strict=True):
        if group is not None:
            members.setdefault(group, []).append((score, label))
    return {
        name: {
            "users": len(pairs),
            "mean_score": round(sum(p for p, _ in pairs) / len(pairs), 4),
            "observed": round(sum(y for _, y in pairs) / len(pairs), 4),
        }
        for name, pairs in sorted(members.items())
    }


def _task(
    model: list[float],
    baselines: dict[str, list[float]],
    labels: list[bool],
    bgnbd_probability: list[float],
    groups: list[str | None],
) -> dict[str, Any]:
    table, gap = reliability(model, labels)
    figures: dict[str, Any] = {
        "positive_share": round(sum(labels) / len(labels), 4),
        "auc": _round(roc_auc(model, labels)),
        "brier": brier(model, labels),
        "reliability_max_gap": gap,
        # The gap's noise: a tenth near the judged size moves it by jumps (see reliability_gap_sd).
        "reliability_gap_sd": reliability_gap_sd(model, labels),
        "reliability": table,
        "baselines": {name: _round(roc_auc(scores, labels)) for name, scores in baselines.items()},
        "bgnbd_brier": brier(bgnbd_probability, labels),
        "bgnbd_reliability_max_gap": reliability(bgnbd_probability, labels)[1],
    }
    if any(g is not None for g in groups):
        figures["by_persona"] = by_group(model, labels, groups)
    known = {k: v for k, v in figures["baselines"].items() if v is not None}
    best = max(known, key=known.__getitem__) if known else None
    figures["best_baseline"] = best
    figures["beats_baselines"] = None if best is None or figures["auc"] is None else figures["auc"] >= known[best]
    # The verdict's margin and its noise (the verdict itself stays the plain comparison).
    figures["margin"] = None if best is None or figures["auc"] is None else round(figures["auc"] - known[best], 4)
    figures["margin_sd"] = None if best is None else margin_sd(model, baselines[best], labels)
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def judge(rows: list[tuple[dict[str, Any], dict[str, Any]]], horizon_days: float) -> dict[str, Any]:
    """Return the figures of both models and their baselines over ``(profile, truth)`` pairs."""
    profiles = [p for p, _ in rows]
    quiet, buy, params = _bgnbd_chances(profiles, horizon_days)
    churned = [bool(t["churned"]) for _, t in rows]
    bought = [t["purchases_in_horizon"] > 0 for _, t in rows]
    never = 1e6  # never bought: the longest recency of all
    personas = [t.get("persona") for _, t in rows]
    return {
        "users": len(rows),
        "horizon_days": horizon_days,
        "bgnbd_params": params,
        "churn": _task(
            [p["churn_risk"] for p in profiles],
            {
                "recency": [_days(p.get("days_since_last_seen"), 0.0) for p in profiles],
                "frequency": [-float(p["sessions_total"]) for p in profiles],
                "bgnbd": quiet,
            },
            churned,
            quiet,
            personas,
        ),
        "propensity": _task(
            [p["purchase_propensity"] for p in profiles],
            {
                "recency": [-_days(p.get("recency_days"), never) for p in profiles],
                "frequency": [float(p["purchases_total"]) for p in profiles],
                "bgnbd": buy,
            },
            bought,
            buy,
            personas,
        ),
    }


def model_quality(profiles: Path, truth: dict[str, dict[str, Any]], horizon_days: float = 30.0) -> dict[str, Any]:
    """Return :func:`judge`'s figures and cluster agreement for users with scores in both files."""
    rows = []
    unscored = 0
    with profiles.open("rb") as fh:
        for line in fh:
            profile = orjson.loads(line)
            known = truth.get(profile["user_id"])
            if known is None:
                continue
            if profile.get("purchase_propensity") is None or profile.get("churn_risk") is None:
                unscored += 1
                continue
            rows.append((profile, known))
    if len(rows) < 2:
        return {"users": len(rows), "unscored": unscored}
    quality = judge(rows, horizon_days)
    quality["unscored"] = unscored
    clustered = [(p.get("cluster"), t["persona"]) for p, t in rows if p.get("cluster") is not None and t.get("persona")]
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
