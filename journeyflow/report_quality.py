"""Report figures for what the summary judges about the models: AUC, calibration, clusters.

They read ``summary.json`` sections that other parts of journeyflow write and
that may be absent (a replay without truth has no ``models.quality``): an absent section gives a chart
that says "not available" and why, never an error. Shapes read:

- ``models.tasks[task]``: ``progressive_auc``, ``prior_progressive_auc``,
  ``examples``, ``positive_share``, ``drifts``; optionally ``auc_over_time``
  (``[{"ts", "auc"}]``).
- ``models.quality[task]`` (replays with ``--truth``): ``auc``, ``baselines``
  (name -> AUC; older flat ``baseline_*_auc`` keys too), ``brier`` and
  ``reliability`` (``[{"mean_score", "observed", "users"}]``).
- ``models.clusters``: ``[{"cluster", "centre": {feature: value}, "assignments"}]``.
"""

from __future__ import annotations

from typing import Any

from journeyflow.report_data import ReportData
from journeyflow.report_plots import Chart, layout

__all__ = ["model_charts", "cluster_charts", "number"]

_TASK_NAMES = {"propensity": "purchase propensity", "churn": "churn risk"}
_SCORE_NAMES = {"purchase_propensity": "purchase propensity", "churn_risk": "churn risk"}


def number(value: Any) -> bool:
    """Return whether ``value`` is an int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _task_part(models: dict[str, Any], task: str, key: str) -> Any:
    found = (models.get("tasks") or {}).get(task, {}).get(key)
    if found is None:
        found = ((models.get("quality") or {}).get(task) or {}).get(key)
    return found


# Judged AUCs: the model's final scores and each naive baseline's, by the key that holds them.
_JUDGED = (("auc", "final scores vs truth"), ("recency", "recency alone"), ("frequency", "frequency alone"),
           ("bgnbd", "BG/NBD alone"), ("baseline_recency_auc", "recency alone"),
           ("baseline_past_purchases_auc", "past purchases alone"))


def _judged(figures: dict[str, Any]) -> dict[str, Any]:
    """Return a task's judged AUCs (``models.quality[task]``: ``auc`` and ``baselines``, or older flat keys)."""
    return {"auc": figures.get("auc"), **(figures.get("baselines") or {}),
            **{k: v for k, v in figures.items() if k.startswith("baseline_") and k.endswith("_auc")}}


def _auc_chart(models: dict[str, Any]) -> Chart:
    tasks = models.get("tasks") or {}
    quality = models.get("quality") or {}
    names = list(tasks)
    labels = [_TASK_NAMES.get(t, t) for t in names]
    traces: list[dict[str, Any]] = []
    text = [
        f"{tasks[t].get('examples', 0):,} examples, {100 * (tasks[t].get('positive_share') or 0):.0f}% positive, "
        f"{tasks[t].get('drifts', 0)} drift(s)"
        for t in names
    ]
    online = False
    for key, label in (("progressive_auc", "learned model, progressive"), ("prior_progressive_auc", "prior, progressive")):
        values = [tasks[t].get(key) for t in names]
        if any(number(v) for v in values):
            online = True
            traces.append({"type": "bar", "name": label, "x": labels, "y": values, "hovertext": text})
    judged = [t for t in names if isinstance(quality.get(t), dict)]
    figures = {t: _judged(quality[t]) for t in judged}
    for key, label in _JUDGED:
        values = [figures[t].get(key) for t in judged]
        if any(number(v) for v in values):
            traces.append({"type": "bar", "name": label, "x": [_TASK_NAMES.get(t, t) for t in judged], "y": values})
    if not traces:
        return Chart("model_auc", "Model quality (ROC AUC)", missing=(
            "not available: no AUC yet (a model needs labelled examples of both classes; "
            "replay with --truth to judge the final scores)"))
    figure = {"data": traces, "layout": layout("ROC AUC per model (0.5 = guessing)", "model", "ROC AUC",
                                               barmode="group", yaxis={"range": [0, 1]})}
    notes = []
    if online:
        notes.append("Progressive: each example scored before it was learned (hover for examples and drifts).")
    if judged:
        notes.append(f"Final scores judged against the ground truth for {quality.get('users', 0):,} users, "
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
        points = [p for p in points if isinstance(p, dict) and number(p.get("auc"))]
        if points:
            traces.append({"type": "scatter", "mode": "lines+markers", "name": _TASK_NAMES.get(task, task),
                           "x": [p.get("ts") for p in points], "y": [p["auc"] for p in points]})
    if not traces:
        return Chart("model_auc_over_time", "AUC over time",
                     missing="not available: summary.json has no AUC history (models.tasks.*.auc_over_time)")
    figure = {"data": traces, "layout": layout("Progressive ROC AUC over event time", "event time (UTC)", "ROC AUC",
                                               yaxis={"range": [0, 1]})}
    return Chart("model_auc_over_time", "AUC over time", figure)


def _bin_value(row: dict[str, Any], *keys: str) -> Any:
    return next((row[k] for k in keys if number(row.get(k))), None)


def _calibration_chart(models: dict[str, Any]) -> Chart:
    traces: list[dict[str, Any]] = []
    for task in models.get("tasks") or {}:
        rows = [r for r in _task_part(models, task, "reliability") or [] if isinstance(r, dict)]
        bins = [(_bin_value(r, "mean_score"), _bin_value(r, "observed", "positive_rate"), _bin_value(r, "users", "n"))
                for r in rows]
        bins = [b for b in bins if b[0] is not None and b[1] is not None]
        if bins:
            brier = _task_part(models, task, "brier")
            name = _TASK_NAMES.get(task, task) + (f" (Brier {brier:.3f})" if number(brier) else "")
            traces.append({"type": "scatter", "mode": "lines+markers", "name": name,
                           "x": [b[0] for b in bins], "y": [b[1] for b in bins],
                           "hovertext": [f"{b[2]:,} users" if b[2] is not None else "" for b in bins]})
    if not traces:
        return Chart("model_calibration", "Calibration",
                     missing="not available: summary.json has no reliability bins (models.quality.*.reliability; "
                     "replay with --truth)")
    traces.append({"type": "scatter", "mode": "lines", "name": "perfectly calibrated", "x": [0, 1], "y": [0, 1],
                   "line": {"dash": "dot", "color": "#999"}})
    figure = {"data": traces, "layout": layout("Calibration: observed rate per score bin", "mean predicted probability",
                                               "observed positive rate", xaxis={"range": [0, 1]}, yaxis={"range": [0, 1]})}
    return Chart("model_calibration", "Calibration", figure,
                 note="Final scores grouped in tenths; a point on the diagonal means the probability is what happens.")


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
        column = [v for i in used if (v := values[i][j]) is not None and number(v)]
        low, high = (min(column), max(column)) if column else (0.0, 0.0)
        for i in used:
            value = values[i][j]
            if value is not None and number(value):
                colour[i][j] = 0.5 if high == low else (value - low) / (high - low)
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
              note=("Own units: purchases_90d and sessions_30d are counts, basket is revenue per order (currency units), "
                    "*_per_session are events per session, conversion_rate is a share of sessions, days_* are days.")),
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
