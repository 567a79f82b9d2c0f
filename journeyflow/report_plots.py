"""Plotly figures (plain dicts, plotly.js's own schema) for the replay report.

Each function returns a :class:`Chart`: a figure for ``Plotly.newPlot``, or,
when the replay has no such data, the reason it is not available. Figures are
plain ``{"data": [...], "layout": {...}}`` dicts rather than
``plotly.graph_objects`` so building the report costs milliseconds; the tests
check every figure against plotly's schema instead. Every figure has a title
and titled axes, units in brackets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from journeyflow.report_data import FUNNEL_STEPS, ReportData

__all__ = ["Chart", "activity_charts", "dead_letter_chart", "segment_charts", "trigger_charts", "funnel_charts"]

Figure = dict[str, Any]

SIDE_LEGEND = {"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top", "font": {"size": 10}, "tracegroupgap": 0}
"""For charts with many series: a legend beside the plot, not under its axis title."""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")
"""Series colours; a segment keeps its colour across the segment charts."""


@dataclass(frozen=True, slots=True)
class Chart:
    """One plot of the report, or the reason it is not available."""

    key: str
    """The chart's element id in the page."""
    title: str
    figure: Figure | None = None
    missing: str = ""
    """Why there is no figure (shown instead of it)."""
    note: str = ""
    """A line under the chart: how to read it."""


def layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    """Return a layout with the report's look, a title and titled axes."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "xaxis": {"title": {"text": x}, "automargin": True},
        "yaxis": {"title": {"text": y}, "automargin": True, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 360,
        "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "#fafafa",
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def _series(counts: Mapping[str, float], days: list[str]) -> list[float]:
    return [counts.get(day, 0) for day in days]


def _daily(title: str, y: str, traces: list[dict[str, Any]], **extra: Any) -> Figure:
    return {"data": traces, "layout": layout(title, "day (UTC)", y, hovermode="x unified", **extra)}


def activity_charts(data: ReportData) -> list[Chart]:
    """Return events, sessions, active customers and revenue per day."""
    days = data.days()
    if not data.sessions:
        reason = "not available: the replay closed no sessions"
        return [Chart("activity", "Activity per day", missing=reason)]
    customers = {day: len(users) for day, users in data.customers.items()}
    line = {"type": "scatter", "mode": "lines+markers", "x": days}
    return [
        Chart(
            "events_per_day",
            "Events per day",
            _daily(
                "Events per day (in sessions, by session start)",
                "events",
                [{**line, "name": "events", "y": _series(data.events, days)}],
            ),
            note="The first and last days may be partial (the input starts and ends there).",
        ),
        Chart(
            "sessions_customers_per_day",
            "Sessions and active customers per day",
            _daily(
                "Sessions and active customers per day",
                "sessions / customers",
                [
                    {**line, "name": "sessions", "y": _series(data.sessions, days)},
                    {**line, "name": "active customers (a session that day)", "y": _series(customers, days)},
                ],
            ),
        ),
        Chart(
            "revenue_per_day",
            "Revenue per day",
            _daily(
                "Revenue per day (purchases in sessions)",
                "revenue [currency units]",
                [{"type": "bar", "x": days, "y": [round(v, 2) for v in _series(data.revenue, days)], "name": "revenue"}],
            ),
        ),
    ]


def dead_letter_chart(summary: dict[str, Any]) -> Chart:
    """Return dead letters by reason code."""
    by_reason = summary.get("dead_letters_by_reason") or {}
    if not by_reason:
        return Chart("dead_letters", "Dead letters by reason", missing="none: every line was processed or a duplicate")
    reasons = sorted(by_reason, key=lambda r: -by_reason[r])
    figure = {
        "data": [{"type": "bar", "x": reasons, "y": [by_reason[r] for r in reasons], "name": "dead letters"}],
        "layout": layout(f"Dead letters by reason ({sum(by_reason.values()):,} in all)", "reason code", "messages"),
    }
    return Chart("dead_letters", "Dead letters by reason", figure, note="Each one is in dead_letters.jsonl with its raw text.")


def segment_charts(data: ReportData) -> list[Chart]:
    """Return segment sizes over time, entries and exits per day, and membership now."""
    days = data.days()
    segments = sorted(set(data.entries) | set(data.exits))
    if not segments:
        return [Chart("segments", "Segments", missing="not available: no user entered or left a segment")]
    colour = {segment: PALETTE[i % len(PALETTE)] for i, segment in enumerate(segments)}
    sizes = []
    for segment in segments:
        known = data.sizes.get(segment, {})
        last, ys = 0, []
        for day in days:  # a day without a change keeps the previous day's size
            last = known.get(day, last)
            ys.append(last)
        sizes.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": colour[segment]},
                      "name": segment, "x": days, "y": ys})
    flows = []
    for segment in segments:
        entries, exits = _series(data.entries[segment], days), _series(data.exits[segment], days)
        common: dict[str, Any] = {"type": "bar", "x": days, "legendgroup": segment, "marker": {"color": colour[segment]}}
        flows.append({**common, "name": segment, "y": entries, "hovertemplate": "%{y} in<extra>" + segment + "</extra>"})
        flows.append({**common, "name": segment, "y": [-v for v in exits], "showlegend": False, "opacity": 0.55,
                      "customdata": exits, "hovertemplate": "%{customdata} out<extra>" + segment + "</extra>"})
    now = data.summary.get("segments") or dict(data.final_sizes)
    ordered = sorted(now, key=lambda s: -now[s])
    return [
        Chart(
            "segment_sizes",
            "Segment sizes over time",
            _daily("Segment sizes at the end of each day", "members [users]", sizes, legend=SIDE_LEGEND),
            note="Click a legend entry to hide a segment; double-click to show it alone.",
        ),
        Chart(
            "segment_flows",
            "Segment entries and exits per day",
            _daily("Entries (up) and exits (down) per day", "users per day", flows, barmode="relative",
                   legend=SIDE_LEGEND),
        ),
        Chart(
            "segment_membership",
            "Current membership",
            {
                "data": [{"type": "bar", "orientation": "h", "y": ordered, "x": [now[s] for s in ordered], "name": "members"}],
                "layout": layout(
                    "Members per segment at the end of the replay",
                    "members [users]",
                    "segment",
                    yaxis={"autorange": "reversed", "rangemode": "normal"},
                    height=max(300, 40 + 24 * len(ordered)),
                ),
            },
        ),
    ]


def trigger_charts(data: ReportData) -> list[Chart]:
    """Return triggers per rule and variant per day, and their totals."""
    if not data.triggers:
        return [Chart("triggers", "Triggers", missing="not available: no trigger fired")]
    days = data.days()
    keys = sorted(data.triggers)
    per_day = [
        {"type": "bar", "name": f"{rule} · {variant}", "x": days, "y": _series(data.triggers[(rule, variant)], days)}
        for rule, variant in keys
    ]
    variants = sorted({variant for _, variant in keys})
    rules = sorted({rule for rule, _ in keys})
    totals = [
        {
            "type": "bar",
            "name": variant,
            "x": rules,
            "y": [sum(data.triggers.get((rule, variant), {}).values()) for rule in rules],
        }
        for variant in variants
    ]
    return [
        Chart(
            "triggers_per_day",
            "Triggers per rule and variant per day",
            _daily("Triggers per day, by rule · variant", "triggers per day", per_day, barmode="stack"),
            note="Variant holdout: the would-be triggers of held-out users (holdouts.jsonl), never sent.",
        ),
        Chart(
            "triggers_by_rule",
            "Triggers by rule and variant",
            {"data": totals, "layout": layout("Triggers by rule and variant (whole replay)", "rule", "triggers", barmode="group")},
        ),
    ]


def funnel_charts(data: ReportData) -> list[Chart]:
    """Return the view -> cart -> checkout -> purchase funnel per session and per customer."""
    if not data.funnel_sessions[0]:
        return [Chart("funnel", "Funnel", missing="not available: the replay closed no sessions")]
    steps = ["all", *FUNNEL_STEPS]
    note = (
        "A session (customer) reaches a step with at least one event of it and of every step before it; "
        "percentages are of the step before."
    )
    if not data.checkouts_recorded:
        note += " These sessions carry no checkout count (written by an older journeyflow): checkout reads as 0."
    charts = []
    for key, unit, counts in (
        ("funnel_sessions", "sessions", data.funnel_sessions),
        ("funnel_customers", "customers", data.funnel_customers),
    ):
        figure = {
            "data": [
                {
                    "type": "funnel",
                    "y": [f"{step}" for step in steps],
                    "x": counts,
                    "textinfo": "value+percent previous",
                    "name": unit,
                }
            ],
            "layout": layout(f"Funnel per {unit[:-1]}", unit, "step", yaxis={"rangemode": "normal"}),
        }
        charts.append(Chart(key, f"Funnel per {unit[:-1]}", figure, note=note))
    return charts
