"""The replay report: its figures from hand-made outputs, and from a real replay."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import plotly.graph_objects as go
import pytest

from journeyflow.cli import main
from journeyflow.errors import JourneyflowError
from journeyflow.report import REPORT_FILE, render, sections, write_report
from journeyflow.report_data import REPORT_INPUTS, joined, read_outputs, read_report_data
from journeyflow.report_loop import uplift_rows
from tests.helpers import at, event, read_jsonl, run_replay
from tests.report_inputs import SUMMARY, add_loop_outputs, write_folder

D1, D2, D3 = "2026-08-01", "2026-08-02", "2026-08-03"


def _charts(out: Path) -> dict[str, object]:
    return {chart.key: chart for section in sections(read_report_data(out)) for chart in section.charts}


def test_series_per_day_from_the_outputs(tmp_path: Path) -> None:
    data = read_report_data(write_folder(tmp_path / "out"))

    assert data.days() == [D1, D2, D3]
    assert (dict(data.events), dict(data.sessions)) == ({D1: 9, D2: 4, D3: 2}, {D1: 2, D2: 1, D3: 1})
    assert {day: len(users) for day, users in data.customers.items()} == {D1: 2, D2: 1, D3: 1}
    assert dict(data.revenue) == {D1: 50.0, D2: 0.0, D3: 0.0}
    assert dict(data.triggers) == {
        ("cart_abandonment", "treatment"): {D2: 2},
        ("cart_abandonment", "holdout"): {D3: 1},
        ("vip_welcome", "treatment"): {D1: 1},
    }


def test_each_file_read_apart_then_joined_gives_the_whole_reading(tmp_path: Path) -> None:
    # A replay cluster reads each output in the process that combined it, then joins the readings.
    out = write_folder(tmp_path / "out")
    add_loop_outputs(out)
    whole = read_report_data(out)
    parts = {name: read_outputs(out, [name]) for name in reversed(REPORT_INPUTS)}
    apart = joined(parts, whole.summary)

    assert apart == whole
    assert render(apart, "out") == render(whole, "out")
    assert [list(d.triggers) for d in (apart, whole)] == [list(whole.triggers)] * 2  # the charts' order


def test_funnel_counts_steps_reached_in_order_per_session_and_per_customer(tmp_path: Path) -> None:
    data = read_report_data(write_folder(tmp_path / "out"))

    # all, product view, add to cart, checkout, purchase. u2's purchase without a
    # cart or checkout does not count as reaching "purchase".
    assert data.funnel_sessions == [4, 3, 2, 1, 1]
    # u2 reaches "add to cart" on the second day; u3 never views a product.
    assert data.funnel_customers == [3, 2, 2, 1, 1]
    assert data.checkouts_recorded


def test_segment_sizes_follow_full_lists_tombstones_and_merges(tmp_path: Path) -> None:
    data = read_report_data(write_folder(tmp_path / "out"))

    assert data.sizes["new_visitor"] == {D1: 1, D2: 2, D3: 1}
    assert data.sizes["loyal"] == {D1: 1, D2: 1, D3: 1}
    assert dict(data.entries["new_visitor"]) == {D1: 2, D2: 1, D3: 1}
    assert dict(data.exits["new_visitor"]) == {D1: 1, D3: 2}
    assert dict(data.final_sizes) == SUMMARY["segments"]


def test_every_figure_is_valid_plotly_with_a_title_and_titled_axes(tmp_path: Path) -> None:
    out = write_folder(tmp_path / "out")
    add_loop_outputs(out)
    charts = _charts(out)
    assert all(chart.figure is not None for key, chart in charts.items() if key != "model_auc_over_time"
               and key != "model_calibration"), {k: c.missing for k, c in charts.items() if c.figure is None}
    for key, chart in charts.items():
        if chart.figure is None:
            continue
        go.Figure(chart.figure)  # raises on any property plotly.js does not know
        layout = chart.figure["layout"]
        assert layout["title"]["text"], key
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"], key


def test_sections_for_data_not_there_say_not_available(tmp_path: Path) -> None:
    charts = _charts(write_folder(tmp_path / "out"))

    for key in ("uplift", "recommendations", "model_auc_over_time", "model_calibration"):
        assert charts[key].figure is None and charts[key].missing.startswith("not available"), key
    page = render(read_report_data(tmp_path / "out"), "out").decode()
    missing = re.findall(r'<div class="missing" id="(\w+)">[^<]*: not available', page)
    assert sorted(missing) == ["model_auc_over_time", "model_calibration", "recommendations", "uplift"]


def test_uplift_with_its_interval_and_recommendations_when_there(tmp_path: Path) -> None:
    out = write_folder(tmp_path / "out")
    add_loop_outputs(out)
    charts = _charts(out)

    (point,) = charts["uplift"].figure["data"]
    # Only the rule with an estimate is plotted, in percentage points, with its asymmetric interval.
    assert point["x"] == ["cart_abandonment"] and point["y"] == [pytest.approx(4.0)]
    assert point["error_y"]["array"] == [pytest.approx(5.0)] and point["error_y"]["arrayminus"] == [pytest.approx(5.0)]
    arms = {trace["name"]: trace["y"] for trace in charts["uplift_arms"].figure["data"]}
    assert arms["holdout"] == [pytest.approx(6.0), None] and arms["treatment"] == [pytest.approx(10.0), pytest.approx(25.0)]
    conversions = {trace["name"]: trace["y"] for trace in charts["conversions_per_day"].figure["data"]}
    assert conversions == {"cart_abandonment · holdout": [0, 0, 1], "cart_abandonment · treatment": [0, 1, 0]}
    recs = {trace["name"]: trace["y"] for trace in charts["recommendations"].figure["data"]}
    assert recs["online (5,000 evaluated)"] == [0.31, 0.12, 0.42, 0.13]
    assert recs["popularity (5,000 evaluated)"] == [0.18, 0.06, 0.27, 0.07]

    rows = uplift_rows(orjson.loads((out / "summary.json").read_bytes()))
    assert rows[0] == ["cart_abandonment", "holdout", "100", "6", "6.00%", "3.00", "+4.00 pp", "[-1.00, +9.00] pp",
                       "66.67%", "3 / 12", "3 d"]
    assert rows[2][:6] == ["vip_welcome", "holdout", "0", "0", "–", "–"]
    assert rows[3][0:2] == ["vip_welcome", "treatment"] and rows[3][6:8] == ["–", "–"]


def test_cluster_heatmap_keeps_own_units_and_leaves_unused_centres_out_of_the_colours(tmp_path: Path) -> None:
    (heatmap,) = _charts(write_folder(tmp_path / "out"))["cluster_centres"].figure["data"]

    assert heatmap["x"] == ["purchases_90d", "basket"]
    assert heatmap["text"] == [["1", "50"], ["3", "20"], ["0", "9e+03"]]
    # cluster:2 learned from nothing: its seed centre (basket 9000) does not flatten the scale.
    assert heatmap["z"] == [[0.0, 1.0], [1.0, 0.0], [None, None]]


def test_page_is_self_contained(tmp_path: Path) -> None:
    out = write_folder(tmp_path / "out")
    result = write_report(out, show_progress=False)
    page = result.path.read_text()

    assert result.path == out / REPORT_FILE
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)
    assert "plotly.js v" in page  # inlined
    ids = re.findall(r'\sid="([^"]+)"', page.split("<script>")[0])
    assert len(ids) == len(set(ids)), sorted(ids)  # plotly draws into getElementById(chart id)
    figures = re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S)
    assert figures is not None and "segment_sizes" in orjson.loads(figures.group(1))


def test_missing_or_broken_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("journeyflow: error: ") and "summary.json" in err and "\n" not in err

    out = write_folder(tmp_path / "out")
    (out / "sessions.jsonl").write_bytes(b'\n{"kind": "session"\n')
    with pytest.raises(JourneyflowError, match=r"sessions.jsonl:2 must be a JSON object; got invalid JSON"):
        read_report_data(out)
    (out / "sessions.jsonl").write_bytes(b'{"kind": "session", "start": "2026-08-01T00:00:00Z"}\n')
    with pytest.raises(JourneyflowError, match=r"sessions.jsonl:1 must be a record as journeyflow writes it; got KeyError"):
        read_report_data(out)


@pytest.mark.slow
def test_replay_writes_the_report_and_report_rebuilds_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = []
    for i, user in enumerate(["u1", "u2", "u3", "u4"]):
        events += [
            event("page_view", user, at(i)),
            event("product_view", user, at(i + 1)),
            event("add_to_cart", user, at(i + 2)),
        ]
        if i < 2:
            events.append(event("checkout_start", user, at(i + 3), cart_value=59.0))
        if i < 1:
            events.append(event("purchase", user, at(i + 4)))
    events.append(event("page_view", "u1", at(days=3)))
    replayed = run_replay(tmp_path, events)
    report = replayed.out / REPORT_FILE

    assert replayed.summary["report"]["file"] == REPORT_FILE and report.exists()
    first = report.read_bytes()
    assert [s["checkouts"] for s in sorted(replayed.sessions, key=lambda s: s["start"])] == [1, 1, 0, 0, 0]
    data = read_report_data(replayed.out)
    assert data.funnel_sessions == [5, 4, 4, 2, 1] and data.funnel_customers == [4, 4, 4, 2, 1]
    # The sizes the report derives from the segment changes agree with the final profiles.
    assert dict(data.final_sizes) == replayed.summary["segments"]
    assert sum(sum(s.values()) for s in data.entries.values()) >= len(read_jsonl(replayed.out / "profiles.jsonl"))

    report.unlink()
    assert main(["report", str(replayed.out), "-q"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"report: {report} (built in ")
    assert report.read_bytes() == first  # no clock in the page: same outputs, same report


def test_model_quality_with_baselines_and_calibration_when_judged(tmp_path: Path) -> None:
    judged = {"positive_share": 0.3, "auc": 0.82, "brier": 0.151,
              "baselines": {"recency": 0.78, "frequency": 0.7, "bgnbd": 0.8},
              "reliability": [{"bin": "0.0-0.1", "users": 40, "mean_score": 0.05, "observed": 0.1},
                              {"bin": "0.9-1.0", "users": 25, "mean_score": 0.93, "observed": 0.88}]}
    summary = {**SUMMARY, "models": {**SUMMARY["models"], "quality": {"users": 65, "churn": judged}}}
    charts = _charts(write_folder(tmp_path / "out", summary))

    auc = {trace["name"]: (trace["x"], trace["y"]) for trace in charts["model_auc"].figure["data"]}
    assert auc["learned model, progressive"] == (["purchase propensity", "churn risk"], [0.71, None])
    assert auc["final scores vs truth"] == (["churn risk"], [0.82])
    assert auc["recency alone"] == (["churn risk"], [0.78]) and auc["BG/NBD alone"] == (["churn risk"], [0.8])
    curve, diagonal = charts["model_calibration"].figure["data"]
    assert curve["name"] == "churn risk (Brier 0.151)" and (curve["x"], curve["y"]) == ([0.05, 0.93], [0.1, 0.88])
    assert curve["hovertext"] == ["40 users", "25 users"] and diagonal["x"] == [0, 1]


def test_uplift_per_variant_and_rate_intervals(tmp_path: Path) -> None:
    arm = {"n": 100, "conversions": 10, "revenue_per_user": 1.0}
    rule = {"window_s": 86400, "uplift_abs": 0.03, "uplift_abs_ci95": [0.0, 0.06], "uplift_rel": 0.5,
            "expired": 0, "pending": 0,
            "arms": {"a": {**arm, "rate": 0.1, "rate_ci95": [0.05, 0.18], "uplift_abs": 0.04,
                           "uplift_abs_ci95": [0.01, 0.07]},
                     "b": {**arm, "rate": 0.08, "rate_ci95": [0.04, 0.15], "uplift_abs": 0.02,
                           "uplift_abs_ci95": [-0.01, 0.05]},
                     "holdout": {**arm, "rate": 0.06, "rate_ci95": [0.03, 0.12]}}}
    charts = _charts(write_folder(tmp_path / "out", {**SUMMARY, "uplift": {"welcome": rule}}))

    (points,) = charts["uplift"].figure["data"]
    assert points["x"] == ["welcome", "welcome · a", "welcome · b"]
    assert points["y"] == [pytest.approx(3.0), pytest.approx(4.0), pytest.approx(2.0)]
    bars = {trace["name"]: trace for trace in charts["uplift_arms"].figure["data"]}
    assert bars["a"]["y"] == [pytest.approx(10.0)]
    assert bars["a"]["error_y"]["array"] == [pytest.approx(8.0)]
    assert bars["a"]["error_y"]["arrayminus"] == [pytest.approx(5.0)]
