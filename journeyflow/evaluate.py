"""``journeyflow evaluate``: judge the models on several regimes, next to naive baselines.

A regime is a data set with a known future: the generator with a persona mix,
a seed and a history length (it simulates the horizon after the written
period and records what each user did in it), or a real purchase log split
in time (CDNOW, with the BG/NBD paper's calibration period). Each is replayed
through the whole dataflow with the default settings; the final scores (as of
the last replayed event) are judged against the horizon's outcomes, next to
recency alone, frequency alone and BG/NBD alone (:mod:`journeyflow.evaluation`).

No regime is the one the models were tuned on: hyperparameters were chosen by
looking at all of them. Figures go to the terminal and to
``evaluation.json`` in the working folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from flows.replay import replay
from journeyflow import datasets, generator, response
from journeyflow.errors import ConfigError
from journeyflow.loop_evaluation import format_loop, loop_quality

__all__ = ["Regime", "REGIMES", "BIG_REGIMES", "evaluate", "format_report"]


@dataclass(frozen=True)
class Regime:
    """One data set with a known future; ``source`` is ``generator``, ``cdnow`` (the paper's sample) or ``cdnow-full``."""

    name: str
    source: str = "generator"
    users: int = 1000
    days: int = 60
    seed: int = 11
    mix: str = "default"

    def describe(self) -> str:
        """Return what the regime is, for a person."""
        if self.source.startswith("cdnow"):
            who = "all 23,570 customers" if self.source == "cdnow-full" else "the paper's 2,357-customer sample"
            return f"CDNOW real purchase log, {who}, 39 weeks of history (1997-01-01 to 1997-09-30), purchases only"
        return f"generator, {self.mix} persona mix, {self.users:,} users, {self.days} days of history, seed {self.seed}"


#: The default run: small enough to finish in a few minutes on two cores.
#: ``default`` is the generator's default regime the targets refer to.
REGIMES = (
    Regime("default", users=2000, days=60, seed=11),
    Regime("30-days", users=1000, days=30, seed=12),
    Regime("90-days", users=1000, days=90, seed=13),
    Regime("regulars", users=1000, days=60, seed=14, mix="regulars"),
    Regime("casual", users=1500, days=60, seed=15, mix="casual"),
    Regime("leavers", users=1000, days=60, seed=16, mix="leavers"),
    Regime("cdnow", source="cdnow"),
)

#: ``--big``: the same questions at ten times the size (an hour or more here).
BIG_REGIMES = tuple(
    Regime("cdnow-full", source="cdnow-full")
    if r.source == "cdnow"
    else dataclasses.replace(r, name=f"{r.name}-big", users=r.users * 10)
    for r in REGIMES
)


def _data(
    regime: Regime, out: Path, cache: Path, horizon_days: int, responses: tuple[response.RuleResponse, ...], tag: str
) -> tuple[Path, Path]:
    """Return the events and truth files of ``regime``, made if missing (responses change the data: own files)."""
    if regime.source.startswith("cdnow"):
        events, truth = out / f"{regime.source}.jsonl", out / f"{regime.source}-{horizon_days}d.truth.jsonl"
        if not (events.exists() and truth.exists()):
            raw = datasets.fetch_cdnow(cache, sample=regime.source == "cdnow")
            datasets.write_cdnow(raw, events, truth, horizon_days)
        return events, truth
    stem = f"events-{regime.mix}-{regime.users}u-{regime.days}d-{regime.seed}{tag}"
    events, truth = out / f"{stem}.jsonl.gz", out / f"{stem}.truth.jsonl"
    if not (events.exists() and truth.exists()):
        config = generator.GeneratorConfig(
            users=regime.users,
            days=regime.days,
            seed=regime.seed,
            mix=regime.mix,
            horizon_days=horizon_days,
            responses=responses,
        )
        generator.generate(config, events, truth)
    return events, truth


def evaluate(
    out: Path,
    settings: Settings,
    regimes: tuple[Regime, ...] = REGIMES,
    *,
    cache: Path,
    files: tuple[Path, Path] | None = None,
    respond: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return the report over ``regimes`` (or the given events and truth ``files``), also in ``out/evaluation.json``.

    ``respond`` (``RULE[:VARIANT]=CHANCE``, see :mod:`journeyflow.response`)
    simulates responses to triggers in the generated regimes; each regime's
    ``loop`` then judges the measured uplift and the bandit against them.
    """
    horizons = {settings.models.churn_horizon_s, settings.models.propensity_horizon_s}
    if len(horizons) != 1 or min(horizons) % 86400:
        msg = f"evaluate needs equal churn and propensity horizons in whole days; got {sorted(horizons)} s instead"
        raise ConfigError(msg)
    horizon_days = horizons.pop() // 86400
    out.mkdir(parents=True, exist_ok=True)
    responses = response.parse_responses(list(respond), settings.rules_path) if respond else ()
    tag = "" if not respond else "-" + response.response_tag(respond)
    results = []
    jobs = [(Regime("given", source="files"), files)] if files is not None else [(r, None) for r in regimes]
    for regime, given in jobs:
        events, truth = given if given is not None else _data(regime, out, cache, horizon_days, responses, tag)
        print(f"evaluate: {regime.name}: replaying {events}", flush=True)
        replayed = out / f"replay-{regime.name}"
        summary = replay([events], replayed, settings, workers=settings.run.workers, truth=truth, show_progress=False)
        models = summary.get("models", {})
        results.append(
            {
                "regime": regime.name,
                "data": str(events) if given is not None else regime.describe(),
                "replay": {k: summary[k] for k in ("read", "users", "events_per_second", "elapsed_s")},
                "quality": models.get("quality", {}),
                "online": models.get("tasks", {}),
                "silhouette": models.get("silhouette"),
                "loop": loop_quality(summary, truth, replayed),
            }
        )
    report = {"horizon_days": horizon_days, "regimes": results}
    (out / "evaluation.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return report


_TARGETS = {
    "churn": "churn risk: no activity at all",
    "propensity": "purchase propensity: a purchase",
}
_EXPLAIN = """\
columns: AUC is the chance that a customer who had the outcome scores above one who did not
(0.5 is a coin, 1.0 is perfect). model = the published score; recency = days since the last
visit (churn) or purchase (propensity) alone; frequency = sessions (churn) or purchases
(propensity) alone; BG/NBD = the BG/NBD model alone, fitted to the same profiles. Brier =
mean squared error of the probability (lower is better; model / BG/NBD); reliability = the
largest gap between mean score and observed share over the tenths of the score that hold
20 users or more (in brackets, its standard deviation over 200 bootstrap resamples of the
users: a tenth near 20 users counts in some and not in others). verdict: whether the model's AUC is at or above the best naive baseline, by
how much, and the standard deviation of that margin over 200 bootstrap resamples of the users
(paired): a margin within about one deviation is not a measured difference."""


def _f(value: Any) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _margin(q: dict[str, Any]) -> str:
    """Return the verdict's margin and its bootstrap standard deviation, if known."""
    if q.get("margin") is None or q.get("margin_sd") is None:
        return ""
    return f" by {q['margin']:+.3f} (sd {q['margin_sd']:.3f})"


def _gap(q: dict[str, Any]) -> str:
    """Return the reliability gap and its bootstrap standard deviation, if known."""
    sd = q.get("reliability_gap_sd")
    return _f(q["reliability_max_gap"]) + ("" if sd is None else f" ({sd:.3f})")


def format_report(report: dict[str, Any]) -> str:
    """Return the report for a person to read: one table per regime, then the columns explained."""
    horizon = report["horizon_days"]
    lines = [f"model quality: scores as of the last replayed event, judged on the next {horizon} days", ""]
    header = f"  {'target (within ' + str(horizon) + ' days)':40} {'share':>6} {'model':>6} {'recency':>8} {'frequency':>10} {'BG/NBD':>7} {'Brier':>12} {'reliab. (sd)':>14}  verdict"
    for result in report["regimes"]:
        quality = result["quality"]
        lines.append(f"{result['regime']}: {result['data']} ({quality.get('users', 0):,} users scored, {quality.get('unscored', 0):,} without scores)")
        lines.append(header)
        for task, title in _TARGETS.items():
            q = quality.get(task)
            if not q:
                lines.append(f"  {title:40} no scores")
                continue
            base = q["baselines"]
            best = q["best_baseline"]
            if q["beats_baselines"] is None:
                verdict = "no verdict (one class only)"
            elif q["beats_baselines"]:
                verdict = f"beats the best naive baseline ({best} {_f(base[best])}){_margin(q)}"
            else:
                verdict = f"LOSES to {best} ({_f(base[best])}){_margin(q)}"
            brier = f"{_f(q['brier'])}/{_f(q['bgnbd_brier'])}"
            lines.append(
                f"  {title:40} {q['positive_share']:6.3f} {_f(q['auc']):>6} {_f(base['recency']):>8} {_f(base['frequency']):>10}"
                f" {_f(base['bgnbd']):>7} {brier:>12} {_gap(q):>14}  {verdict}"
            )
        lines.extend("  " + line for line in format_loop(result.get("loop", {})))
        replayed = result["replay"]
        lines.append(f"  replay: {replayed['read']:,} lines, {replayed['users']:,} users, {replayed['elapsed_s']:.0f} s")
        lines.append("")
    lines.append(_EXPLAIN)
    return "\n".join(lines)
