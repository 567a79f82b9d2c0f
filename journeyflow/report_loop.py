"""Report figures for the closed loop and the recommender: uplift, conversions, hit rates.

They read ``summary.json`` sections those parts write, in the agreed shapes,
and say "not available" when a section is absent:

- ``uplift[rule]``: ``window_s``, ``arms`` (variant or ``holdout`` -> ``n``,
  ``conversions``, ``rate``, ``revenue_per_user``), ``uplift_abs``,
  ``uplift_abs_ci95``, ``uplift_rel``, ``expired``, ``pending``;
- ``recommendations[method]``: ``hit_rate_10``, ``mrr_10``, ``hit_rate_20``,
  ``mrr_20``, ``evaluated``;
- and the conversions of ``conversions.jsonl`` per day (:mod:`journeyflow.report_data`).
"""

from __future__ import annotations

from typing import Any

from journeyflow.report_data import ReportData
from journeyflow.report_plots import Chart, layout
from journeyflow.report_quality import number

__all__ = ["uplift_charts", "uplift_rows", "recommendation_charts"]


def _arms(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: arm for name, arm in (result.get("arms") or {}).items() if isinstance(arm, dict)}


def _estimates(uplift: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Return (label, figures) per rule with an uplift estimate, and per variant when a rule has several."""
    found = []
    for rule in sorted(uplift):
        result = uplift[rule]
        if number(result.get("uplift_abs")):
            found.append((rule, result))
        variants = [(arm, f) for arm, f in sorted(_arms(result).items())
                    if arm != "holdout" and number(f.get("uplift_abs"))]
        if len(variants) > 1:
            found += [(f"{rule} · {arm}", f) for arm, f in variants]
    return found


def _error_bars(ys: list[float], cis: list[list[float]]) -> dict[str, Any]:
    """Return plotly's asymmetric error bars for values ``ys`` (percent) and intervals ``cis`` (shares)."""
    return {"type": "data", "symmetric": False,
            "array": [max(0.0, 100 * hi - y) for (_, hi), y in zip(cis, ys)],
            "arrayminus": [max(0.0, y - 100 * lo) for (lo, _), y in zip(cis, ys)]}


def uplift_charts(data: ReportData) -> list[Chart]:
    """Return uplift per rule with its 95% interval, conversion rate per arm, conversions per day."""
    uplift = {rule: r for rule, r in (data.summary.get("uplift") or {}).items() if isinstance(r, dict)}
    if not uplift:
        return [Chart("uplift", "Uplift", missing="not available: summary.json has no uplift "
                      "(no rule with a holdout, or a journeyflow without conversion tracking)")]
    estimates = _estimates(uplift)
    charts = []
    if estimates:
        labels = [label for label, _ in estimates]
        ys = [100 * figures["uplift_abs"] for _, figures in estimates]
        cis = [figures.get("uplift_abs_ci95") or [figures["uplift_abs"]] * 2 for _, figures in estimates]
        figure = {"data": [{"type": "scatter", "mode": "markers", "name": "uplift", "x": labels, "y": ys,
                            "marker": {"size": 11}, "error_y": _error_bars(ys, cis)}],
                  "layout": layout("Uplift per trigger (treated − holdout), 95% interval", "rule",
                                   "uplift [percentage points]", yaxis={"rangemode": "normal", "zeroline": True,
                                                                        "zerolinewidth": 2})}
        charts.append(Chart("uplift", "Uplift per trigger", figure,
                            note="An interval that crosses 0 means the data cannot tell the trigger helps. "
                                 "A rule with several variants also shows each variant against the holdout."))
    else:
        charts.append(Chart("uplift", "Uplift per trigger", missing="not available: no rule has an uplift estimate yet "
                            "(too few conversions in the treated or held-out group)"))
    rules = sorted(uplift)
    rate_traces = []
    for arm in sorted({arm for r in uplift.values() for arm in _arms(r)}):
        figures = [_arms(uplift[r]).get(arm) or {} for r in rules]
        # An arm with no judged trigger yet has no rate: a gap in the bars, not a 0.
        ys = [100 * f["rate"] if number(f.get("rate")) else None for f in figures]
        cis = [f.get("rate_ci95") if number(f.get("rate")) and f.get("rate_ci95") else [f.get("rate") or 0] * 2
               for f in figures]
        rate_traces.append({"type": "bar", "name": arm, "x": rules, "y": ys,
                            "error_y": _error_bars([y or 0.0 for y in ys], cis),
                            "hovertext": [f"n={f.get('n') or 0:,}" for f in figures]})
    charts.append(Chart("uplift_arms", "Conversion rate per arm", {"data": rate_traces, "layout": layout(
        "Conversion rate per rule and arm, 95% interval", "rule", "conversion rate [%]", barmode="group")}))
    if data.conversions:
        days = data.days()
        traces = [{"type": "bar", "name": f"{rule} · {variant}", "x": days,
                   "y": [data.conversions[(rule, variant)].get(d, 0) for d in days]}
                  for rule, variant in sorted(data.conversions)]
        charts.append(Chart("conversions_per_day", "Conversions per day", {"data": traces, "layout": layout(
            "Conversions per day, by rule · variant", "day (UTC)", "conversions per day", barmode="stack")}))
    else:
        charts.append(Chart("conversions_per_day", "Conversions per day", missing="not available: no conversions.jsonl"))
    return charts


def uplift_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Return the uplift table: one row per rule and arm, figures formatted."""
    def pct(value: Any) -> str:
        return f"{100 * value:.2f}%" if number(value) else "–"

    rows = []
    for rule, result in sorted((summary.get("uplift") or {}).items()):
        if not isinstance(result, dict):
            continue
        ci = result.get("uplift_abs_ci95")
        interval = f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}] pp" if ci else "–"
        uplift = f"{100 * result['uplift_abs']:+.2f} pp" if number(result.get("uplift_abs")) else "–"
        for arm, figures in sorted(_arms(result).items()):
            revenue = figures.get("revenue_per_user")
            rows.append([rule, arm, f"{figures.get('n', 0):,}", f"{figures.get('conversions', 0):,}",
                         pct(figures.get("rate")), f"{revenue:,.2f}" if number(revenue) else "–",
                         uplift, interval, pct(result.get("uplift_rel")),
                         f"{result.get('pending', 0):,} / {result.get('expired', 0):,}",
                         f"{result.get('window_s', 0) / 86400:g} d" if number(result.get("window_s")) else "–"])
    return rows


def recommendation_charts(data: ReportData) -> list[Chart]:
    """Return hit rate and MRR at 10 and 20 for each recommender next to its baselines."""
    recs = {m: v for m, v in (data.summary.get("recommendations") or {}).items() if isinstance(v, dict)}
    metrics = [("hit_rate_10", "hit rate@10"), ("mrr_10", "MRR@10"), ("hit_rate_20", "hit rate@20"), ("mrr_20", "MRR@20")]
    methods = [m for m in recs if any(number(recs[m].get(k)) for k, _ in metrics)]
    if not methods:
        return [Chart("recommendations", "Recommendation quality", missing="not available: summary.json has no "
                      "recommendation quality (a journeyflow without the recommender)")]
    traces = [{"type": "bar", "name": f"{m} ({recs[m].get('evaluated', 0):,} evaluated)", "x": [label for _, label in metrics],
               "y": [recs[m].get(k) for k, _ in metrics]} for m in methods]
    figure = {"data": traces, "layout": layout("Recommendation quality per method", "metric",
                                               "score (0 to 1)", barmode="group")}
    return [Chart("recommendations", "Recommendation quality", figure)]
