"""Hand-made replay folders for the report tests, in the outputs' wire shapes.

``uplift``, ``recommendations`` and ``conversions.jsonl`` follow the shapes
agreed with the closed-loop and recommender work, so the report's sections for
them are built and tested before those outputs exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

__all__ = ["write_folder", "UPLIFT", "RECOMMENDATIONS", "CONVERSIONS", "add_loop_outputs"]


def _session(user: str, start: str, **counts: Any) -> dict[str, Any]:
    doc = {"kind": "session", "session_id": f"s-{user}-{start}", "user_id": user, "start": start, "end": start,
           "duration_s": 0.0, "events": 1, "page_views": 0, "product_views": 0, "add_to_cart": 0, "checkouts": 0,
           "purchases": 0, "revenue": 0.0, "converted": False, "channel": "web"}
    doc.update(counts)
    return doc


def _change(user: str, ts: str, entered: list[str], exited: list[str], segments: list[str]) -> dict[str, Any]:
    return {"kind": "segment_change", "user_id": user, "ts": ts, "entered": entered, "exited": exited,
            "segments": segments, "cause_event_id": None, "cause": "event", "profile": {}}


def _trigger(rule: str, user: str, ts: str, variant: str) -> dict[str, Any]:
    return {"kind": "trigger", "trigger_id": f"t-{rule}-{user}-{ts}", "rule": rule, "user_id": user, "ts": ts,
            "cause_event_id": None, "variant": variant, "payload": {}}


SESSIONS = [
    # u1: views, carts, checks out and buys in one session: reaches every step.
    _session("u1", "2026-08-01T10:00:00Z", events=6, product_views=2, add_to_cart=1, checkouts=1, purchases=1,
             revenue=40.0),
    # u2: a view, then a purchase without cart or checkout: reaches "product view" only.
    _session("u2", "2026-08-01T11:00:00Z", events=3, product_views=1, purchases=1, revenue=10.0),
    # u2 again, next day: view and cart.
    _session("u2", "2026-08-02T09:00:00Z", events=4, product_views=1, add_to_cart=2),
    # u3: nothing but a page view, on the third day.
    _session("u3", "2026-08-03T08:00:00.5Z", events=2, page_views=2),
]

CHANGES = [
    _change("u1", "2026-08-01T10:00:00Z", ["new_visitor"], [], ["new_visitor"]),
    _change("u2", "2026-08-01T11:00:00Z", ["new_visitor"], [], ["new_visitor"]),
    _change("u1", "2026-08-01T10:30:00Z", ["loyal"], ["new_visitor"], ["loyal"]),
    _change("u3", "2026-08-02T08:00:00Z", ["new_visitor"], [], ["new_visitor"]),
    # u2 is erased on day 3: a tombstone leaves every segment.
    {"kind": "tombstone", "reason": "forget", "user_id": "u2", "ts": "2026-08-03T12:00:00Z", "cause_event_id": None},
    # the anonymous device a-9 joins u3: it has no profile (no segments) of its own after it.
    _change("a-9", "2026-08-03T12:30:00Z", ["new_visitor"], [], ["new_visitor"]),
    {"kind": "merge", "user_id": "u3", "anonymous_id": "a-9", "ts": "2026-08-03T13:00:00Z", "cause_event_id": None},
]

TRIGGERS = [
    _trigger("cart_abandonment", "u2", "2026-08-02T10:00:00Z", "treatment"),
    _trigger("cart_abandonment", "u1", "2026-08-02T11:00:00Z", "treatment"),
    _trigger("vip_welcome", "u1", "2026-08-01T10:30:00Z", "treatment"),
]
HOLDOUTS = [_trigger("cart_abandonment", "u3", "2026-08-03T10:00:00Z", "holdout")]

PROFILES = [
    {"user_id": "u1", "segments": ["loyal"], "purchase_propensity": 0.9, "churn_risk": 0.1},
    {"user_id": "u3", "segments": ["new_visitor"], "purchase_propensity": None, "churn_risk": None},
]

SUMMARY: dict[str, Any] = {
    "inputs": ["events.jsonl"], "read": 20, "processed": 15, "duplicates": 1, "dead_letters": 4,
    "dead_letters_by_reason": {"invalid_json": 3, "late": 1}, "sessions": 4, "users": 4, "triggers": 3,
    "holdouts": 1, "segment_changes": 6, "segments": {"loyal": 1, "new_visitor": 1}, "elapsed_s": 1.5,
    "events_per_second": 13, "accounted": True,
    "models": {
        "tasks": {"propensity": {"examples": 40, "positive_share": 0.25, "progressive_auc": 0.71, "drifts": 1},
                  "churn": {"examples": 60, "positive_share": 0.5, "progressive_auc": None, "drifts": 0}},
        "clusters": [
            {"cluster": 0, "centre": {"purchases_90d": 1.0, "basket": 50.0}, "assignments": 10},
            {"cluster": 1, "centre": {"purchases_90d": 3.0, "basket": 20.0}, "assignments": 5},
            {"cluster": 2, "centre": {"purchases_90d": 0.0, "basket": 9000.0}, "assignments": 0},
        ],
    },
}

UPLIFT: dict[str, Any] = {
    "cart_abandonment": {
        "window_s": 259200,
        "arms": {"treatment": {"n": 900, "conversions": 90, "rate": 0.10, "revenue_per_user": 4.5},
                 "holdout": {"n": 100, "conversions": 6, "rate": 0.06, "revenue_per_user": 3.0}},
        "treated": {"n": 900, "conversions": 90, "rate": 0.10, "revenue_per_user": 4.5},
        "holdout": {"n": 100, "conversions": 6, "rate": 0.06, "revenue_per_user": 3.0},
        "uplift_abs": 0.04, "uplift_abs_ci95": [-0.01, 0.09], "uplift_rel": 0.6667, "expired": 12, "pending": 3,
    },
    # Too few held-out users for an estimate: listed in the table, not in the uplift plot.
    "vip_welcome": {
        "window_s": 604800,
        "arms": {"treatment": {"n": 8, "conversions": 2, "rate": 0.25, "revenue_per_user": 10.0},
                 # no held-out trigger judged yet: no rate
                 "holdout": {"n": 0, "conversions": 0, "rate": None, "revenue_per_user": None}},
        "treated": {"n": 8, "conversions": 2, "rate": 0.25, "revenue_per_user": 10.0},
        "holdout": {"n": 0, "conversions": 0, "rate": 0.0, "revenue_per_user": 0.0},
        "uplift_abs": None, "uplift_abs_ci95": None, "uplift_rel": None, "expired": 0, "pending": 8,
    },
}

RECOMMENDATIONS: dict[str, Any] = {
    "online": {"hit_rate_10": 0.31, "mrr_10": 0.12, "hit_rate_20": 0.42, "mrr_20": 0.13, "evaluated": 5000},
    "popularity": {"hit_rate_10": 0.18, "mrr_10": 0.06, "hit_rate_20": 0.27, "mrr_20": 0.07, "evaluated": 5000},
}

CONVERSIONS = [
    {"kind": "conversion", "trigger_id": "t-1", "rule": "cart_abandonment", "variant": "treatment", "user_id": "u2",
     "ts": "2026-08-02T12:00:00Z", "cause_event_id": "e-1", "value": 59.0},
    {"kind": "conversion", "trigger_id": "t-2", "rule": "cart_abandonment", "variant": "holdout", "user_id": "u3",
     "ts": "2026-08-03T11:00:00Z", "cause_event_id": "e-2", "value": 20.0},
]


def _jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def write_folder(out: Path, summary: dict[str, Any] | None = None) -> Path:
    """Write a small replay folder (summary and outputs) into ``out``; return it."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(orjson.dumps(summary if summary is not None else SUMMARY))
    _jsonl(out / "sessions.jsonl", SESSIONS)
    _jsonl(out / "segment_changes.jsonl", CHANGES)
    _jsonl(out / "triggers.jsonl", TRIGGERS)
    _jsonl(out / "holdouts.jsonl", HOLDOUTS)
    _jsonl(out / "profiles.jsonl", PROFILES)
    _jsonl(out / "dead_letters.jsonl", [])
    return out


def add_loop_outputs(out: Path) -> None:
    """Add the closed loop's and the recommender's outputs to a replay folder."""
    summary = orjson.loads((out / "summary.json").read_bytes())
    summary["uplift"] = UPLIFT
    summary["recommendations"] = RECOMMENDATIONS
    (out / "summary.json").write_bytes(orjson.dumps(summary))
    _jsonl(out / "conversions.jsonl", CONVERSIONS)
