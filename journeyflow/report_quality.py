"""Report figures for what the summary judges: models, clusters, uplift, recommendations.

They read ``summary.json`` sections that other parts of journeyflow write and
that may be absent (a replay without truth has no ``models.quality``; a build
without the closed loop has no ``uplift``): an absent section gives a chart
that says "not available" and why, never an error. Shapes read:

- ``models.tasks[task]``: ``progressive_auc``, ``examples``, ``positive_share``,
  ``drifts``; optionally ``auc_over_time`` (``[{"ts", "auc"}]``) and
  ``reliability`` (``[{"mean_score", "positive_rate", "n"}]``), also looked up
  under ``models.quality[task]``.
- ``models.clusters``: ``[{"cluster", "centre": {feature: value}, "assignments"}]``.
- ``uplift[rule]``: ``window_s``, ``arms`` (variant or ``holdout`` -> ``n``,
  ``conversions``, ``rate``, ``revenue_per_user``), ``uplift_abs``,
  ``uplift_abs_ci95``, ``uplift_rel``, ``expired``, ``pending``.
- ``recommendations[method]``: ``hit_rate_10``, ``mrr_10``, ``hit_rate_20``,
  ``mrr_20``, ``evaluated``.
"""

from __future__ import annotations

from typing import Any

from journeyflow.report_data import ReportData
from journeyflow.report_plots import Chart, layout

__all__ = ["model_charts", "cluster_charts", "uplift_charts", "uplift_rows", "recommendation_charts"]

_TASK_NAMES = {"propensity": "purchase propensity", "churn": "churn risk"}
_SCORE_NAMES = {"purchase_propensity": "purchase propensity", "churn_risk": "churn risk"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _task_part(models: dict[str, Any], task: str, key: str) -> Any:
    found = (models.get("tasks") or {}).get(task, {}).get(key)
    if found is None:
        found = ((models.get("quality") or {}).get(task) or {}).get(key)
    return found


def _auc_chart(models: dict[str, Any]) -> Chart:
    tasks = models.get("tasks") or {}
    quality = models.get("quality") or {}
    names = list(tasks)
    online = [tasks[t].get("progressive_auc") for t in names]
    traces: list[dict[str, Any]] = []
    if any(_number(v) for v in online):
        text = [
            f"{tasks[t].get('examples', 0):,} examples, {100 * (tasks[t].get('positive_share') or 0):.0f}% positive, "
            f"{tasks[t].get('drifts', 0)} drift(s)"
            for t in names
        ]
        traces.append({"type": "bar", "name": "progressive (online)", "x": [_TASK_NAMES.get(t, t) for t in names],
                       "y": online, "hovertext": text})
    judged = [t for t in names if isinstance(quality.get(t), dict)]
    for key, label in (("auc", "final scores vs truth"), ("baseline_recency_auc", "recency alone"),
                       ("baseline_past_purchases_auc", "past purchases alone")):
        values = [quality[t].get(key) for t in judged]
        if any(_number(v) for v in values):
            traces.append({"type": "bar", "name": label, "x": [_TASK_NAMES.get(t, t) for t in judged], "y": values})
    if not traces:
        return Chart("model_auc", "Model quality (ROC AUC)", missing=(
            "not available: no AUC yet (a model needs labelled examples of both classes; "
            "replay with --truth to judge the final scores)"))
    figure = {"data": traces, "layout": layout("ROC AUC per model (0.5 = guessing)", "model", "ROC AUC",
                                               barmode="group", yaxis={"range": [0, 1]})}
    notes = []
    if any(_number(v) for v in online):
        notes.append("Progressive: each example scored before it was learned (hover for examples and drifts).")
    if judged:
        notes.append(f"Final scores judged against the generator's truth for {quality.get('users', 0):,} users, "
                     "next to naive baselines.")
    return Chart("model_auc", "Model quality (ROC AUC)", figure, note=" ".join(notes))


def _examples_chart(models: dict[str, Any]) -> Chart:
    tasks = {t: v for t, v in (models.get("tasks") or {}).items() if isinstance(v, dict) and v.get("examples")}
    if not tasks:
        return Chart("model_examples", "Training examples", missing="not available: the models learned from no example")
    names = [_TASK_NAMES.get(t, t) for t in tasks]
    positive = [round(v["examples"] * (v.get("positive_share") or 0)) for v in tasks.values()]
    negative = [v["examples"] - p for v, p in zip(tasks.values(), positive)]
    figure = {"data": [{"type": "bar", "name": "positive label", "x": names, "y": positive},
                       {"type": "bar", "name": "negative label", "x": names, "y": negative}],
              "layout": layout("Labelled examples the models learned from", "model", "examples", barmode="stack")}
    return Chart("model_examples", "Training examples", figure,
                 note="Positive: bought within the horizon (propensity), did not return (churn). One class alone teaches nothing.")


def _auc_over_time_chart(models: dict[str, Any]) -> Chart:
    traces = []
    for task in models.get("tasks") or {}:
        points = _task_part(models, task, "auc_over_time") or []
        points = [p for p in points if isinstance(p, dict) and _number(p.get("auc"))]
        if points:
            traces.append({"type": "scatter", "mode": "lines+markers", "name": _TASK_NAMES.get(task, task),
                           "x": [p.get("ts") for p in points], "y": [p["auc"] for p in points]})
    if not traces:
        return Chart("model_auc_over_time", "AUC over time",
                     missing="not available: summary.json has no AUC history (models.tasks.*.auc_over_time)")
    figure = {"data": traces, "layout": layout("Progressive ROC AUC over event time", "event time (UTC)", "ROC AUC",
                                               yaxis={"range": [0, 1]})}
    return Chart("model_auc_over_time", "AUC over time", figure)


def _calibration_chart(models: dict[str, Any]) -> Chart:
    traces: list[dict[str, Any]] = []
    for task in models.get("tasks") or {}:
        bins = _task_part(models, task, "reliability") or []
        bins = [b for b in bins if isinstance(b, dict) and _number(b.get("mean_score")) and _number(b.get("positive_rate"))]
        if bins:
            traces.append({"type": "scatter", "mode": "lines+markers", "name": _TASK_NAMES.get(task, task),
                           "x": [b["mean_score"] for b in bins], "y": [b["positive_rate"] for b in bins],
                           "hovertext": [f"{b.get('n', '?')} users" for b in bins]})
    if not traces:
        return Chart("model_calibration", "Calibration",
                     missing="not available: summary.json has no reliability bins (models.tasks.*.reliability)")
    traces.append({"type": "scatter", "mode": "lines", "name": "perfectly calibrated", "x": [0, 1], "y": [0, 1],
                   "line": {"dash": "dot", "color": "#999"}})
    figure = {"data": traces, "layout": layout("Calibration: observed rate per score bin", "mean predicted probability",
                                               "observed positive rate", xaxis={"range": [0, 1]}, yaxis={"range": [0, 1]})}
    return Chart("model_calibration", "Calibration", figure)


def _score_chart(data: ReportData) -> Chart:
    traces = [
        {"type": "histogram", "name": _SCORE_NAMES[model], "x": [round(s, 4) for s in scores], "opacity": 0.6,
         "xbins": {"start": 0, "end": 1, "size": 0.05}}
        for model, scores in sorted(data.scores.items()) if scores
    ]
    if not traces:
        return Chart("model_scores", "Final scores", missing="not available: no profile has a score yet "
                     "(models publish none before [models] min_examples labelled examples)")
    figure = {"data": traces, "layout": layout("Final scores of the profiles", "score (probability)", "profiles",
                                               barmode="overlay", xaxis={"range": [0, 1]})}
    return Chart("model_scores", "Final scores", figure)


def model_charts(data: ReportData) -> list[Chart]:
    """Return AUC (online and judged), AUC over time, calibration and the final score distributions."""
    models = data.summary.get("models") or {}
    return [_auc_chart(models), _examples_chart(models), _auc_over_time_chart(models), _calibration_chart(models),
            _score_chart(data)]


def cluster_charts(data: ReportData) -> list[Chart]:
    """Return the cluster centres in the features' own units (a heatmap) and the clusters' sizes."""
    clusters = [c for c in (data.summary.get("models") or {}).get("clusters") or [] if isinstance(c, dict)]
    if not clusters:
        return [Chart("clusters", "Clusters", missing="not available: summary.json describes no clusters")]
    features = list(clusters[0].get("centre") or {})
    names = [f"cluster:{c['cluster']}" for c in clusters]
    values = [[(c.get("centre") or {}).get(f) for f in features] for c in clusters]
    # Colour is each feature's place between its smallest and largest centre, so features
    # of any unit share one scale; the text keeps the own-unit value. A cluster that learned
    # from no point keeps its seed centre: shown in text, left out of the colour scale.
    used = [i for i, c in enumerate(clusters) if c.get("assignments")]
    colour: list[list[float | None]] = [[None] * len(features) for _ in clusters]
    for j in range(len(features)):
        column = [values[i][j] for i in used if _number(values[i][j])]
        low, high = (min(column), max(column)) if column else (0.0, 0.0)
        for i in used:
            if _number(values[i][j]):
                colour[i][j] = 0.5 if high == low else (values[i][j] - low) / (high - low)
    text = [[("" if v is None else f"{v:,.3g}") for v in row] for row in values]
    heatmap = {
        "data": [{"type": "heatmap", "x": features, "y": names, "z": colour, "text": text,
                  "texttemplate": "%{text}", "hovertemplate": "%{y}<br>%{x} = %{text}<extra></extra>",
                  "colorscale": [[0, "#f7fbff"], [1, "#08519c"]], "zmin": 0, "zmax": 1,
                  "colorbar": {"title": {"text": "low → high<br>among clusters"}}}],
        "layout": layout("Cluster centres in the features' own units", "feature", "cluster",
                         yaxis={"autorange": "reversed", "rangemode": "normal"}, xaxis={"tickangle": -30},
                         height=max(320, 120 + 44 * len(names))),
    }
    members = data.summary.get("segments") or {}
    sizes = {"data": [
        {"type": "bar", "name": "points learned from", "x": names, "y": [c.get("assignments", 0) for c in clusters]},
        {"type": "bar", "name": "members at the end", "x": names, "y": [members.get(n, 0) for n in names]},
    ], "layout": layout("Cluster sizes", "cluster", "count [points / users]", barmode="group")}
    charts = [
        Chart("cluster_centres", "Cluster centres", heatmap,
              note="Units: purchases and sessions are counts, basket is money per order, rates are shares, days are days."),
        Chart("cluster_sizes", "Cluster sizes", sizes),
    ]
    judged = ((data.summary.get("models") or {}).get("quality") or {}).get("clusters") or {}
    table = judged.get("personas_by_cluster") or {}
    if table:
        personas = sorted({p for row in table.values() for p in row})
        rows = sorted(table)
        crosstab = {"data": [{"type": "heatmap", "x": personas, "y": rows, "colorscale": [[0, "#f7fcf5"], [1, "#006d2c"]],
                              "z": [[table[r].get(p, 0) for p in personas] for r in rows], "texttemplate": "%{z}",
                              "colorbar": {"title": {"text": "users"}}}],
                    "layout": layout("Clusters against the generator's personas (ground truth)", "persona", "cluster",
                                     yaxis={"autorange": "reversed", "rangemode": "normal"},
                                     height=max(320, 120 + 44 * len(rows)))}
        ari = judged.get("adjusted_rand_index")
        charts.append(Chart("cluster_personas", "Clusters vs personas", crosstab,
                            note=f"Adjusted Rand index {ari} (1 = the same grouping, 0 = chance)." if ari is not None else ""))
    return charts


def _arms(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: arm for name, arm in (result.get("arms") or {}).items() if isinstance(arm, dict)}


def uplift_charts(data: ReportData) -> list[Chart]:
    """Return uplift per rule with its 95% interval, conversion rate per arm, conversions per day."""
    uplift = {rule: r for rule, r in (data.summary.get("uplift") or {}).items() if isinstance(r, dict)}
    if not uplift:
        return [Chart("uplift", "Uplift", missing="not available: summary.json has no uplift "
                      "(no rule with a holdout, or a journeyflow without conversion tracking)")]
    rules = [rule for rule in sorted(uplift) if _number(uplift[rule].get("uplift_abs"))]
    charts = []
    if rules:
        ys = [100 * uplift[r]["uplift_abs"] for r in rules]
        cis = [uplift[r].get("uplift_abs_ci95") or [uplift[r]["uplift_abs"]] * 2 for r in rules]
        figure = {"data": [{"type": "scatter", "mode": "markers", "name": "uplift", "x": rules, "y": ys,
                            "marker": {"size": 11},
                            "error_y": {"type": "data", "symmetric": False,
                                        "array": [100 * hi - y for (_, hi), y in zip(cis, ys)],
                                        "arrayminus": [y - 100 * lo for (lo, _), y in zip(cis, ys)]}}],
                  "layout": layout("Uplift per trigger (treated − holdout), 95% interval", "rule",
                                   "uplift [percentage points]", yaxis={"rangemode": "normal", "zeroline": True,
                                                                        "zerolinewidth": 2})}
        charts.append(Chart("uplift", "Uplift per trigger", figure,
                            note="An interval that crosses 0 means the data cannot tell the trigger helps."))
    else:
        charts.append(Chart("uplift", "Uplift per trigger", missing="not available: no rule has an uplift estimate yet "
                            "(too few conversions in the treated or held-out group)"))
    arm_names = sorted({arm for r in uplift.values() for arm in _arms(r)})
    rate_traces = [{"type": "bar", "name": arm, "x": sorted(uplift),
                    "y": [100 * (_arms(uplift[r]).get(arm) or {}).get("rate", 0) for r in sorted(uplift)],
                    "hovertext": [f"n={(_arms(uplift[r]).get(arm) or {}).get('n', 0):,}" for r in sorted(uplift)]}
                   for arm in arm_names]
    charts.append(Chart("uplift_arms", "Conversion rate per arm", {"data": rate_traces, "layout": layout(
        "Conversion rate per rule and arm", "rule", "conversion rate [%]", barmode="group")}))
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
        return f"{100 * value:.2f}%" if _number(value) else "–"

    rows = []
    for rule, result in sorted((summary.get("uplift") or {}).items()):
        if not isinstance(result, dict):
            continue
        ci = result.get("uplift_abs_ci95")
        interval = f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}] pp" if ci else "–"
        uplift = f"{100 * result['uplift_abs']:+.2f} pp" if _number(result.get("uplift_abs")) else "–"
        for arm, figures in sorted(_arms(result).items()):
            revenue = figures.get("revenue_per_user")
            rows.append([rule, arm, f"{figures.get('n', 0):,}", f"{figures.get('conversions', 0):,}",
                         pct(figures.get("rate")), f"{revenue:,.2f}" if _number(revenue) else "–",
                         uplift, interval, pct(result.get("uplift_rel")),
                         f"{result.get('pending', 0):,} / {result.get('expired', 0):,}",
                         f"{result.get('window_s', 0) / 86400:g} d" if _number(result.get("window_s")) else "–"])
    return rows


def recommendation_charts(data: ReportData) -> list[Chart]:
    """Return hit rate and MRR at 10 and 20 for each recommender next to its baselines."""
    recs = {m: v for m, v in (data.summary.get("recommendations") or {}).items() if isinstance(v, dict)}
    metrics = [("hit_rate_10", "hit rate@10"), ("mrr_10", "MRR@10"), ("hit_rate_20", "hit rate@20"), ("mrr_20", "MRR@20")]
    methods = [m for m in recs if any(_number(recs[m].get(k)) for k, _ in metrics)]
    if not methods:
        return [Chart("recommendations", "Recommendation quality", missing="not available: summary.json has no "
                      "recommendation quality (a journeyflow without the recommender)")]
    traces = [{"type": "bar", "name": f"{m} ({recs[m].get('evaluated', 0):,} evaluated)", "x": [label for _, label in metrics],
               "y": [recs[m].get(k) for k, _ in metrics]} for m in methods]
    figure = {"data": traces, "layout": layout("Recommendation quality per method", "metric",
                                               "score (0 to 1)", barmode="group")}
    return [Chart("recommendations", "Recommendation quality", figure)]
