"""``journeyflow evaluate``: generate a data set with ground truth, replay it, judge the models.

The generator simulates a future period after the replayed one and records
what each user did in it; the replay's final scores (as of its last event)
are judged against that, next to naive baselines. Figures go to the terminal
and to ``evaluation.json`` in the working folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from flows.replay import replay
from journeyflow import generator, response
from journeyflow.loop_evaluation import format_loop, loop_quality

__all__ = ["evaluate", "format_report"]


def evaluate(
    out: Path,
    settings: Settings,
    *,
    users: int,
    days: int,
    seed: int,
    events: Path | None = None,
    truth: Path | None = None,
    respond: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return the quality report (also written to ``out/evaluation.json``).

    ``respond`` (``RULE[:VARIANT]=CHANCE``, see :mod:`journeyflow.response`)
    simulates responses to triggers; the report's ``loop`` then judges the
    measured uplift and the bandit against them.
    """
    out.mkdir(parents=True, exist_ok=True)
    generated = None
    if events is None:
        # Responses change the data: they get their own cached file.
        tag = "" if not respond else "-" + response.response_tag(respond)
        events = out / f"events-{users}u-{days}d-{seed}{tag}.jsonl.gz"
        truth = out / f"events-{users}u-{days}d-{seed}{tag}.truth.jsonl"
        if not (events.exists() and truth.exists()):
            responses = response.parse_responses(list(respond), settings.rules_path)
            config = generator.GeneratorConfig(users=users, days=days, seed=seed, responses=responses)
            generated = generator.generate(config, events, truth)
    if truth is None:
        msg = f"--truth is required with --events; got events {str(events)!r} and no truth"
        raise FileNotFoundError(msg)
    summary = replay([events], out / "replay", settings, workers=settings.run.workers, truth=truth)
    models = summary.get("models", {})
    report = {
        "events": str(events),
        "generated_events": None if generated is None else generated.events,
        "replay": {k: summary[k] for k in ("read", "processed", "users", "sessions", "events_per_second", "elapsed_s")},
        "quality": models.get("quality", {}),
        "progressive": models.get("tasks", {}),
        "silhouette": models.get("silhouette"),
        "clusters": models.get("clusters", []),
        "model_version": models.get("model_version"),
        "loop": loop_quality(summary, truth, out / "replay"),
    }
    (out / "evaluation.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return report


def _figure(value: Any) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def format_report(report: dict[str, Any]) -> str:
    """Return the quality report for a person to read."""
    quality = report["quality"]
    lines = [
        f"model quality on {report['events']} ({quality.get('users', 0):,} users with scores)",
        f"{'':24}{'model':>8}{'recency':>10}{'past buys':>11}{'progressive':>13}",
    ]
    for task, title in (("propensity", "purchase propensity AUC"), ("churn", "churn risk AUC")):
        q = quality.get(task, {})
        progressive = report["progressive"].get(task, {}).get("progressive_auc")
        lines.append(
            f"{title:24}  {_figure(q.get('auc'))}  {_figure(q.get('baseline_recency_auc'))}"
            f"    {_figure(q.get('baseline_past_purchases_auc'))}      {_figure(progressive)}"
        )
    clusters = quality.get("clusters", {})
    lines.append(
        f"clusters: adjusted Rand index vs personas {_figure(clusters.get('adjusted_rand_index'))}, "
        f"silhouette {_figure(report.get('silhouette'))}"
    )
    for name, personas in clusters.get("personas_by_cluster", {}).items():
        top = ", ".join(f"{p} {n}" for p, n in list(personas.items())[:3])
        lines.append(f"  {name:10} {top}")
    lines.extend(format_loop(report.get("loop", {})))
    replayed = report["replay"]
    lines.append(
        f"replay: {replayed['read']:,} lines, {replayed['users']:,} users, "
        f"{replayed['events_per_second']:,} lines/s; model {report['model_version']}"
    )
    return "\n".join(lines)
