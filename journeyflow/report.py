"""Write ``report.html``: one self-contained page of plots over a replay's outputs.

A replay writes it after the flow (``flows.replay.replay``), and ``journeyflow
report OUT_DIR`` rebuilds it from the folder's files. The page opens offline:
plotly.js (from the pinned ``plotly`` package) and the figures are inlined,
nothing is fetched. Building it reads every output once and writes about
5 MB (plotly.js is most of it); it prints a progress line when it takes
over a second. The page is the same for the same outputs (no clock in it).

The page marks each chart ``data-drawn="yes"`` once plotly drew it, and the
``<body>`` ``data-charts="drawn"`` once all did (``failed: ...`` on an error):
the Chromium test reads those.
"""

from __future__ import annotations

import html
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import plotly
from plotly.offline import get_plotlyjs

from journeyflow.report_data import ReportData, read_report_data
from journeyflow.report_plots import (
    Chart,
    activity_charts,
    dead_letter_chart,
    funnel_charts,
    segment_charts,
    trigger_charts,
)
from journeyflow.report_loop import recommendation_charts, uplift_charts, uplift_rows
from journeyflow.report_quality import cluster_charts, model_charts

__all__ = ["REPORT_FILE", "ReportResult", "write_report", "sections"]

REPORT_FILE = "report.html"

_UPLIFT_COLUMNS = ["rule", "arm", "users", "conversions", "rate", "revenue per user", "uplift", "95% interval",
                   "relative uplift", "pending / expired", "window"]


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of the page: charts, and optionally a table under them."""

    key: str
    title: str
    charts: list[Chart]
    table: tuple[list[str], list[list[str]]] | None = None


@dataclass(frozen=True, slots=True)
class ReportResult:
    """Where the report went and how long it took to build."""

    path: Path
    elapsed_s: float


def sections(data: ReportData) -> list[Section]:
    """Return the report's sections, in page order."""
    uplift_table = uplift_rows(data.summary)
    return [
        Section("activity", "Activity", activity_charts(data)),
        Section("dead-letters", "Dead letters", [dead_letter_chart(data.summary)]),
        Section("segments", "Segments", segment_charts(data)),
        Section("triggers", "Triggers", trigger_charts(data)),
        Section("funnel", "Funnel: view → cart → checkout → purchase", funnel_charts(data)),
        Section("clusters", "Clusters", cluster_charts(data)),
        Section("models", "Models", model_charts(data)),
        Section("uplift", "Uplift of the triggers", uplift_charts(data),
                (_UPLIFT_COLUMNS, uplift_table) if uplift_table else None),
        Section("recommendations", "Recommendations", recommendation_charts(data)),
    ]


def _yes_no(flag: Any) -> str:
    """A summary's boolean as the report shows it; "–" when the summary lacks it."""
    return "yes" if flag is True else "NO" if flag is False else "–"


def _headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    def count(key: str) -> str:
        value = summary.get(key)
        return f"{value:,}" if isinstance(value, int) else "–"

    rate = summary.get("events_per_second")
    return [
        ("lines read", count("read")),
        ("processed", count("processed")),
        ("duplicates", count("duplicates")),
        ("dead letters", count("dead_letters")),
        ("users", count("users")),
        ("sessions", count("sessions")),
        ("segment changes", count("segment_changes")),
        ("triggers", count("triggers")),
        ("held out", count("holdouts")),
        ("replay time", f"{summary['elapsed_s']:,.1f} s" if isinstance(summary.get("elapsed_s"), int | float) else "–"),
        ("lines/s", f"{rate:,}" if isinstance(rate, int) else "–"),
        ("every line accounted for", _yes_no(summary.get("accounted"))),
    ]


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f4f5f7}
header{background:#1f3b57;color:#fff;padding:16px 24px}
header h1{margin:0 0 4px;font-size:22px} header p{margin:0;opacity:.85;font-size:13px}
nav{padding:8px 24px;background:#e8ecf1;font-size:13px;position:sticky;top:0;z-index:10}
nav a{margin-right:14px;color:#1f3b57}
main{padding:8px 24px 40px;max-width:1400px}
section{margin-top:20px} h2{font-size:18px;border-bottom:2px solid #1f3b57;padding-bottom:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
figure{margin:0;background:#fff;border-radius:6px;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figcaption{font-size:12px;color:#555;padding:4px 6px}
.missing{padding:24px;color:#666;font-style:italic;background:#fff;border-radius:6px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin-top:10px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#e8ecf1}
td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}
.kpi{background:#fff;border-radius:6px;padding:8px 12px;min-width:110px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi b{display:block;font-size:18px} .kpi span{font-size:12px;color:#555}
"""

# Runs before plotly.js, so a script error anywhere on the page is recorded on <body>.
_ERROR_HOOK = """window.addEventListener('error', function (e) {
  document.body.dataset.charts = 'failed: ' + e.message;
});"""

_DRAW = """(function () {
  var figures = JSON.parse(document.getElementById('figures').textContent);
  var config = {displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ['select2d', 'lasso2d', 'zoomIn2d', 'zoomOut2d', 'autoScale2d', 'toggleSpikelines',
                             'hoverClosestCartesian', 'hoverCompareCartesian']};
  Promise.all(Object.keys(figures).map(function (id) {
    return Plotly.newPlot(id, figures[id].data, figures[id].layout, config)
      .then(function (el) { el.dataset.drawn = 'yes'; });
  })).then(function () {
    if (!document.body.dataset.charts) { document.body.dataset.charts = 'drawn'; }
  }, function (err) {
    console.error(err);
    document.body.dataset.charts = 'failed: ' + err;
  });
})();"""


def _chart_html(chart: Chart) -> str:
    if chart.figure is None:
        return f'<figure><div class="missing" id="{chart.key}">{html.escape(chart.title)}: {html.escape(chart.missing)}</div></figure>'
    caption = f"<figcaption>{html.escape(chart.note)}</figcaption>" if chart.note else ""
    return f'<figure><div class="chart" id="{chart.key}"></div>{caption}</figure>'


def _table_html(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: ReportData, source: str) -> bytes:
    """Return the whole page as bytes."""
    parts = sections(data)
    figures = {c.key: c.figure for s in parts for c in s.charts if c.figure is not None}
    summary = data.summary
    kpis = "".join(f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                   for k, v in _headline(summary))
    nav = "".join(f'<a href="#section-{s.key}">{html.escape(s.title.split(":")[0])}</a>' for s in parts)
    body = []
    for s in parts:
        table = _table_html(*s.table) if s.table else ""
        charts = "".join(_chart_html(c) for c in s.charts)
        body.append(f'<section id="section-{s.key}"><h2>{html.escape(s.title)}</h2><div class="grid">{charts}</div>{table}</section>')
    inputs = ", ".join(str(p) for p in summary.get("inputs") or []) or "unknown input"
    period = f"{data.first_day} to {data.last_day} (UTC)" if data.first_day else "no dated records"
    # "</" inside inlined JSON would end the <script> element early.
    figures_json = orjson.dumps(figures).replace(b"</", b"<\\/")
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>journeyflow report: {html.escape(source)}</title><style>{_STYLE}</style>"
        f"<script>{_ERROR_HOOK}</script></head><body>"
        f"<header><h1>journeyflow replay report</h1><p>{html.escape(inputs)} · {html.escape(period)} · "
        f"outputs in {html.escape(source)} · plotly.js from plotly {plotly.__version__}</p></header>"
        f"<nav>{nav}</nav><main><div class=\"kpis\">{kpis}</div>{''.join(body)}</main>"
    )
    return b"".join([
        head.encode(),
        b"<script>", get_plotlyjs().encode(), b"</script>",
        b'<script id="figures" type="application/json">', figures_json, b"</script>",
        b"<script>", _DRAW.encode(), b"</script></body></html>\n",
    ])


def write_report(
    out_dir: Path, *, summary: dict[str, Any] | None = None, data: ReportData | None = None, show_progress: bool = True
) -> ReportResult:
    """Build ``out_dir/report.html`` from the folder's outputs; return where and how long it took.

    ``summary`` is the replay's summary when the caller has it in hand
    (otherwise ``summary.json`` is read); ``data``, the outputs already read
    (:func:`~journeyflow.report_data.read_outputs` of every file, with
    ``summary``). The file is replaced atomically, so a reader never sees
    half a report.
    """
    started = time.monotonic()
    path = out_dir / REPORT_FILE
    slow = threading.Timer(1.0, lambda: print(f"report: building {path} ...", file=sys.stderr, flush=True))
    slow.daemon = True
    if show_progress:
        slow.start()
    try:
        if data is None:
            data = read_report_data(out_dir, summary=summary)
        page = render(data, str(out_dir))
        partial = path.with_name(f".{REPORT_FILE}.part")
        partial.write_bytes(page)
        os.replace(partial, path)
    finally:
        slow.cancel()
    return ReportResult(path, round(time.monotonic() - started, 3))
