"""The closed loop's part of a replay's summary: uplift per rule, bandits, and its printed table."""

from __future__ import annotations

from typing import Any

from operators.loop_records import LoopReport

__all__ = ["loop_summary", "format_uplift"]


def loop_summary(reports: list[LoopReport]) -> dict[str, Any]:
    """Return the summary's ``uplift``, ``bandits`` and ``conversions`` entries from the loop's report."""
    if not reports:
        return {"conversions": 0, "uplift": {}, "bandits": {}}
    (report,) = reports
    return {
        "conversions": report.conversions,
        "uplift": report.uplift,
        "bandits": report.bandits,
        "loop_max_delay_s": report.max_delay_s,
    }


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:5.1f}%"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def format_uplift(summary: dict[str, Any]) -> list[str]:
    """Return the printed uplift table: one block per rule that fired."""
    uplift = summary.get("uplift") or {}
    rules = {name: doc for name, doc in uplift.items() if doc["treated"]["n"] or doc["holdout"]["n"] or doc["pending"]}
    if not rules:
        return []
    lines = [
        f"  conversions   {summary['conversions']:>10,}   uplift: conversion within the window, "
        "treated vs holdout, 95% Newcombe interval",
        f"    {'rule':20} {'arm':12} {'n':>7} {'conv':>6} {'rate':>7} {'rev/user':>9}  share",
    ]
    for name, doc in rules.items():
        first = True
        for arm, figures in doc["arms"].items():
            share = figures.get("share")
            revenue = figures["revenue_per_user"]
            lines.append(
                f"    {name if first else '':20} {arm:12} {figures['n']:>7,} {figures['conversions']:>6,} "
                f"{_pct(figures['rate']):>7} {'-' if revenue is None else f'{revenue:.2f}':>9}"
                + ("" if share is None or arm in ("holdout", "treatment") else f"  {share:5.1%}")
            )
            first = False
        if doc["uplift_abs"] is None:
            verdict = "uplift n/a (no holdout, or nothing judged yet)"
        else:
            low, high = doc["uplift_abs_ci95"]
            relative = "" if doc["uplift_rel"] is None else f", relative {doc['uplift_rel'] * 100:+.0f}%"
            verdict = f"uplift {_points(doc['uplift_abs'])} pts [{_points(low)}, {_points(high)}]{relative}"
        lines.append(f"    {'':20} {verdict}; expired {doc['expired']:,}, pending {doc['pending']:,}")
    return lines
