"""Judge the closed loop on generated data: does the measured uplift recover the simulated one?

The generator's truth lists every cart-abandonment occasion with its potential
responses (:mod:`journeyflow.response`), held-out or not. The true effect of
the purchase response on the conversion rate is the share of occasions where
the customer responds *and* would not have bought anyway within the window
(a response on top of a natural purchase changes nothing). For a variant,
the true click-through is the share of occasions that would click it. The
replay's ``uplift`` is compared with these, and the bandit's allocation is
read from ``triggers.jsonl``: the share of the best variant among the last
half of the rule's treated triggers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from journeyflow.events import parse_ts

__all__ = ["true_effects", "loop_quality", "format_loop"]


def true_effects(truth: Path, windows_ms: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Return per rule the occasions, the true purchase effect and each variant's true click rate."""
    found: dict[str, dict[str, Any]] = {}
    with truth.open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            occasions = row.get("occasions")
            if not occasions:
                continue
            bought = [parse_ts(s["end"]) for s in row["sessions"] if s["converted"]]
            for occasion in occasions:
                rule = occasion["rule"]
                start = parse_ts(occasion["trigger_ts"])
                window = windows_ms.get(rule, 3 * 86_400_000)
                natural = any(start < t <= start + window for t in bought)
                doc = found.setdefault(rule, {"occasions": 0, "held_out": 0, "effect": 0, "natural": 0, "clicks": {}})
                doc["occasions"] += 1
                doc["held_out"] += occasion["held_out"]
                doc["natural"] += natural
                doc["effect"] += occasion["purchase"] and not natural
                for variant in occasion["clicks"]:
                    doc["clicks"][variant] = doc["clicks"].get(variant, 0) + 1
    for doc in found.values():
        n = doc["occasions"]
        doc["effect"] = round(doc["effect"] / n, 6)
        doc["natural"] = round(doc["natural"] / n, 6)
        doc["clicks"] = {v: round(c / n, 6) for v, c in sorted(doc["clicks"].items())}
    return found


def _inside(ci: list[float] | None, value: float) -> bool | None:
    return None if ci is None else ci[0] <= value <= ci[1]


def _late_share(triggers: Path, rule: str) -> dict[str, float]:
    variants = []
    with triggers.open("rb") as fh:
        for line in fh:
            record = orjson.loads(line)
            if record["rule"] == rule:
                variants.append(record["variant"])
    last = variants[len(variants) // 2 :]
    return {v: round(last.count(v) / len(last), 4) for v in sorted(set(last))} if last else {}


def loop_quality(summary: dict[str, Any], truth: Path, replay_dir: Path) -> dict[str, Any]:
    """Return, per rule with simulated responses, the true effects next to what the replay measured."""
    uplift = summary.get("uplift", {})
    truths = true_effects(truth, {name: doc["window_s"] * 1000 for name, doc in uplift.items()})
    report: dict[str, Any] = {}
    for rule, true in truths.items():
        measured = uplift.get(rule)
        if measured is None:
            continue
        doc: dict[str, Any] = {"truth": true, "uplift_abs": measured["uplift_abs"], "uplift_abs_ci95": measured["uplift_abs_ci95"]}
        if not true["clicks"]:
            # A purchase goal: the pooled uplift against the true purchase effect.
            doc["true_effect"] = true["effect"]
            doc["contains_true_effect"] = _inside(measured["uplift_abs_ci95"], true["effect"])
        else:
            # A click goal per variant: held-out customers get no e-mail, so a
            # variant's true uplift is its true click rate.
            variants = {
                name: {
                    "n": arm["n"],
                    "rate": arm["rate"],
                    "uplift_abs": arm.get("uplift_abs"),
                    "uplift_abs_ci95": arm.get("uplift_abs_ci95"),
                    "share": arm.get("share"),
                    "true_uplift": true["clicks"].get(name, 0.0),
                    "contains_true_uplift": _inside(arm.get("uplift_abs_ci95"), true["clicks"].get(name, 0.0)),
                }
                for name, arm in measured["arms"].items()
                if name != "holdout"
            }
            best = max(variants, key=lambda v: variants[v]["true_uplift"])
            late = _late_share(replay_dir / "triggers.jsonl", rule)
            doc["variants"] = variants
            doc["best_variant"] = best
            doc["best_share_last_half"] = late.get(best, 0.0)
        report[rule] = doc
    return report


def _ci(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def format_loop(report: dict[str, Any]) -> list[str]:
    """Return the printed lines of :func:`loop_quality`'s report."""
    lines = []
    for rule, doc in report.items():
        if "variants" not in doc:
            lines.append(
                f"{rule}: true effect {doc['true_effect']:+.3f}, measured uplift "
                f"{'n/a' if doc['uplift_abs'] is None else format(doc['uplift_abs'], '+.3f')} "
                f"{_ci(doc['uplift_abs_ci95'])}, contains it: {doc['contains_true_effect']}"
            )
            continue
        for name, arm in doc["variants"].items():
            lines.append(
                f"{rule} {name}: true {arm['true_uplift']:.3f}, measured "
                f"{'n/a' if arm['uplift_abs'] is None else format(arm['uplift_abs'], '+.3f')} {_ci(arm['uplift_abs_ci95'])}, "
                f"contains it: {arm['contains_true_uplift']}, share {arm['share'] or 0:.2f}"
            )
        lines.append(f"{rule}: best variant {doc['best_variant']} gets {doc['best_share_last_half']:.0%} of the last half")
    return lines
