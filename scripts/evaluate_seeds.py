#!/usr/bin/env python
"""Judge the models on every default regime, a second seed of each generated one and a third of three.

Issue 9's rule: a change is kept only if it helps across regimes, not on the
one it was built for. This runs ``journeyflow evaluate``'s :func:`evaluate`
over the seven default regimes, each generated one again with seed + 100
(``-s2``) and ``default``, ``30-days`` and ``casual`` with seed + 200
(``-s3``), then prints one line per regime and task: AUC next to the best
naive baseline, Brier, reliability gap (and its bootstrap deviation) and the learned model's trust.
Hold the machine lock: ``flock /tmp/bench.lock .venv/bin/python
scripts/evaluate_seeds.py OUT [--regimes a,b]`` (``--regimes`` picks some of
the 16 by name, for a quicker look while developing).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from config.settings import load_settings
from journeyflow.evaluate import REGIMES, Regime, evaluate

THIRD = ("default", "30-days", "casual")


def regimes() -> tuple[Regime, ...]:
    """Return the 16 regimes: the default seven, ``-s2`` of the six generated, ``-s3`` of three."""
    generated = [r for r in REGIMES if r.source == "generator"]
    second = [dataclasses.replace(r, name=f"{r.name}-s2", seed=r.seed + 100) for r in generated]
    third = [dataclasses.replace(r, name=f"{r.name}-s3", seed=r.seed + 200) for r in generated if r.name in THIRD]
    return (*REGIMES, *second, *third)


def main(out: Path, names: tuple[str, ...] = ()) -> None:
    chosen = tuple(r for r in regimes() if not names or r.name in names)
    unknown = set(names) - {r.name for r in chosen}
    if unknown:
        msg = f"--regimes must name regimes of {[r.name for r in regimes()]}; got {sorted(unknown)} instead"
        raise SystemExit(msg)
    report = evaluate(out, load_settings(), chosen, cache=Path.home() / ".cache" / "journeyflow")
    for result in report["regimes"]:
        for task in ("churn", "propensity"):
            q = result["quality"].get(task)
            if not q:
                print(f"{result['regime']:14} {task:10} no scores")
                continue
            best = q["best_baseline"]
            trust = result["online"].get(task, {}).get("trust")
            verdict = "ok" if q["beats_baselines"] else "LOSES"
            print(
                f"{result['regime']:14} {task:10} auc {q['auc']:.4f} best {best} {q['baselines'][best]:.4f} margin sd {q.get('margin_sd')}"
                f" brier {q['brier']:.4f}/{q['bgnbd_brier']:.4f} gap {q['reliability_max_gap']} sd {q.get('reliability_gap_sd')} trust {trust} {verdict}"
            )
        # The models step's prior (its steady parameters) next to a batch fit of the final profiles.
        for task, over in (("churn", "sessions"), ("propensity", "purchases")):
            online = (result["online"].get(task, {}).get("prior") or {}).get("params")
            batch = result["quality"].get("bgnbd_params", {}).get(over)
            print(f"{result['regime']:14} {over:10} prior r/alpha/a/b online {_params(online)} batch {_params(batch)}")


def _params(params: dict[str, float] | None) -> str:
    return "-" if params is None else "/".join(f"{params[k]:.3g}" for k in ("r", "alpha", "a", "b"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/evaluate-seeds", type=Path)
    parser.add_argument("--regimes", default="", help="comma-separated names of the regimes to run (all 16 by default)")
    args = parser.parse_args()
    main(args.out, tuple(n for n in args.regimes.split(",") if n))
