"""The Grafana dashboard queries only metrics and labels the worker really exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import journeyflow.metrics as metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/journeyflow.json"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
             "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
# Labels Prometheus adds to every scraped series (the target's), and the bucket bound.
_TARGET_LABELS = {"job", "instance", "deployment"}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                 "offset", "inf", "nan"}


def _exported() -> dict[str, set[str]]:
    """Return every series name the worker's registry exports, with its label names."""
    labels = {
        m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
    }
    names: dict[str, set[str]] = {}
    for family in REGISTRY.collect():  # also the process and Python collectors the worker serves
        for suffix in _SUFFIXES.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = labels.get(family.name, set()) | extra
    return names


def _parse(expr: str) -> tuple[set[str], set[str]]:
    """Return the metric names and the label names a PromQL expression uses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    used_labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", " ".join(re.findall(r"\{([^}]*)\}", expr))))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used_labels |= {label.strip() for label in group.split(",") if label.strip()}
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    names = {
        token for token, call in re.findall(r"([a-zA-Z_:][\w:]*)\s*(\(?)", bare)
        if not call and token.lower() not in _PROMQL_WORDS and not re.fullmatch(r"\d\w*", token)
    }
    return names, used_labels


def _panels() -> list[dict[str, Any]]:
    return [p for p in orjson.loads(DASHBOARD.read_bytes())["panels"] if p["type"] != "row"]


def test_parse_finds_names_and_labels() -> None:
    names, labels = _parse(
        'histogram_quantile(0.9, sum by (le, model) (rate(journeyflow_model_score_bucket{model!="x"}[$__rate_interval])))'
        " / on (model) group_left max(up)"
    )
    assert names == {"journeyflow_model_score_bucket", "up"}
    assert labels == {"le", "model"}


def test_every_query_uses_exported_metrics_and_their_labels() -> None:
    exported = _exported()
    assert "journeyflow_events_read_total" in exported and exported["journeyflow_dead_letters_total"] == {"reason"}
    for panel in _panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names, labels = _parse(target["expr"])
            assert names, f"{panel['title']!r}: no metric in {target['expr']!r}"
            unknown = names - set(exported)
            assert not unknown, f"{panel['title']!r} queries {sorted(unknown)}, which journeyflow/metrics.py does not export"
            known = set().union(*(exported[n] for n in names)) | _TARGET_LABELS
            assert labels <= known, f"{panel['title']!r}: labels {sorted(labels - known)} do not exist on {sorted(names)}"
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert legend <= known, f"{panel['title']!r}: legend names {sorted(legend - known)}"


def test_dashboard_covers_the_worker_and_uses_the_provisioned_data_source() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    queried: set[str] = set()
    for panel in _panels():
        assert panel["title"] and panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]
        for target in panel["targets"]:
            queried |= _parse(target["expr"])[0]
    # What an operator of the live worker must see (issue 14).
    for family in ("events_read_total", "kafka_lag", "dead_letters_total", "segment_entries_total",
                   "segment_exits_total", "triggers_total", "model_score_bucket", "model_drifts_total",
                   "redis_write_errors_total", "kafka_errors_total", "ready"):
        assert f"journeyflow_{family}" in queried, family
    ids = [p["id"] for p in orjson.loads(DASHBOARD.read_bytes())["panels"]]
    assert len(ids) == len(set(ids))
