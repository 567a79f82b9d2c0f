"""The replay report as a person sees it: opened offline in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.replay import replay
from journeyflow.cli import main
from journeyflow.report import REPORT_FILE, write_report
from tests.chromium import Browser
from tests.helpers import settings
from tests.report_inputs import add_loop_outputs

pytestmark = pytest.mark.slow

# Per chart: whether plotly drew it, how many traces and drawn marks (bars, line
# paths, heatmap images), its size, and the titles the page shows.
_CHART_STATE = """JSON.stringify(Array.from(document.querySelectorAll('.chart')).map(function (el) {
  var marks = Array.from(el.querySelectorAll('g.trace path, g.trace image, g.hm image, .heatmaplayer image'))
    .filter(function (m) {
      var r = m.getBoundingClientRect();
      return (m.getAttribute('d') || m.getAttribute('href') || '').length > 2 && (r.width > 0 || r.height > 0);
    });
  var box = el.getBoundingClientRect();
  var text = function (sel) { var t = el.querySelector(sel); return t ? t.textContent : ''; };
  return {id: el.id, drawn: el.dataset.drawn || '', svgs: el.querySelectorAll('svg.main-svg').length,
          traces: el.data ? el.data.length : 0, marks: marks.length, width: box.width, height: box.height,
          title: text('.gtitle'), x: text('.xtitle'), y: text('.ytitle')};
}))"""


def _figures(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    return orjson.loads(found.group(1).replace("<\\/", "</"))


def _check_page(browser: Browser, report: Path) -> list[str]:
    """Open ``report``, check every chart drew; return the ids of the charts marked not available."""
    browser.events.clear()
    browser.open(report.as_uri())
    browser.wait_for(lambda: browser.evaluate("document.body.dataset.charts || ''") != "", "charts drawn")
    assert browser.evaluate("document.body.dataset.charts") == "drawn"
    assert browser.errors() == []
    # Offline: the page asks for nothing but itself and the images plotly makes in place.
    assert {u for u in browser.requested_urls() if not u.startswith("data:")} == {report.as_uri()}

    figures = _figures(report.read_text())
    charts = orjson.loads(browser.evaluate(_CHART_STATE))
    assert sorted(c["id"] for c in charts) == sorted(figures)
    for chart in charts:
        figure = figures[chart["id"]]
        assert chart["drawn"] == "yes" and chart["svgs"] >= 1, chart
        assert chart["width"] > 200 and chart["height"] > 200, chart
        assert chart["traces"] == len(figure["data"]) and chart["marks"] > 0, chart
        assert chart["title"] == figure["layout"]["title"]["text"], chart
        assert chart["y"] == figure["layout"]["yaxis"]["title"]["text"], chart
        if not chart["id"].startswith("funnel"):  # a funnel has no value axis to title
            assert chart["x"] == figure["layout"]["xaxis"]["title"]["text"], chart
    return browser.evaluate("Array.from(document.querySelectorAll('.missing')).map(function (e) { return e.id; })")


def test_report_draws_every_plot_offline_in_chromium(tmp_path: Path) -> None:
    events, truth = tmp_path / "events.jsonl.gz", tmp_path / "truth.jsonl"
    assert main(["generate", "--users", "150", "--days", "14", "--seed", "5", "--out", str(events),
                 "--truth", str(truth)]) == 0
    out = tmp_path / "out"
    replay([events], out, settings(), show_progress=False, truth=truth)
    plain = out / REPORT_FILE
    with_loop = tmp_path / "with-loop"
    with_loop.mkdir()
    for output in out.iterdir():
        (with_loop / output.name).write_bytes(output.read_bytes())
    add_loop_outputs(with_loop)
    write_report(with_loop, show_progress=False)

    with Browser(tmp_path / "chromium-profile", timeout_s=120) as browser:
        missing = _check_page(browser, plain)
        # The recommender is on by default: its online figures are drawn. The closed
        # loop is there (shipped holdouts): its uplift and arms are drawn.
        assert "recommendations" not in missing
        assert not {"uplift", "uplift_arms"} & set(missing)
        assert "segment_sizes" not in missing and "funnel_sessions" not in missing
        missing_with_loop = _check_page(browser, with_loop / REPORT_FILE)
        assert not {"uplift", "uplift_arms", "conversions_per_day", "recommendations"} & set(missing_with_loop)
        shot = tmp_path / "report.png"
        browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
