"""Check the closed loop on generated data with known responses, several data sets side by side.

For each scenario and seed: generate events with simulated responses to
cart-abandonment triggers (``journeyflow generate --respond``), replay them,
and compare what the replay measured with the truth
(:mod:`journeyflow.loop_evaluation`):

* purchase scenarios (shipped rules, 10% holdout): the true effect, the
  measured uplift and its 95% interval, and the naive figure a team without a
  holdout would quote (the treated conversion rate);
* variant scenarios (``config/examples/cart_variants.toml``): each variant's
  true and measured click-through, the bandit's share of the best variant in
  the last half of the triggers, and its clicks against an even split.

Usage: ``python scripts/evaluate_loop.py [--users 1000] [--days 30] [--out out/evaluate-loop]``
(wrap it in ``flock /tmp/bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config.loading import DEFAULT_CONFIG  # noqa: E402
from config.settings import load_settings  # noqa: E402
from flows.replay import replay  # noqa: E402
from journeyflow import generator, response  # noqa: E402
from journeyflow.loop_evaluation import loop_quality  # noqa: E402

SHIPPED = DEFAULT_CONFIG.with_name("rules.toml")
VARIANTS = DEFAULT_CONFIG.parent / "examples" / "cart_variants.toml"
SCENARIOS = [
    ("purchase +0.30", SHIPPED, ["cart_abandonment=0.3"]),
    ("purchase none", SHIPPED, ["cart_abandonment=0.0"]),
    ("clicks 0.05/0.15", VARIANTS, ["cart_abandonment:reminder=0.05", "cart_abandonment:discount=0.15"]),
    ("clicks 0.12/0.08", VARIANTS, ["cart_abandonment:reminder=0.12", "cart_abandonment:discount=0.08"]),
]


def _run(name: str, rules: Path, specs: list[str], seed: int, args: argparse.Namespace) -> dict:
    work = args.out / f"{name.replace(' ', '_').replace('/', '-')}-{seed}"
    events, truth = work / "events.jsonl.gz", work / "events.truth.jsonl"
    config = generator.GeneratorConfig(
        users=args.users, days=args.days, seed=seed, responses=response.parse_responses(specs, rules)
    )
    generator.generate(config, events, truth)
    settings = load_settings(env={}, overrides={"segments": {"rules_file": str(rules)}})
    summary = replay([events], work / "replay", settings, show_progress=False)
    quality = loop_quality(summary, truth, work / "replay")["cart_abandonment"]
    quality["treated_rate"] = summary["uplift"]["cart_abandonment"]["treated"]["rate"]
    quality["holdout_n"] = summary["uplift"]["cart_abandonment"]["holdout"]["n"]
    quality["treated_n"] = summary["uplift"]["cart_abandonment"]["treated"]["n"]
    return quality


def _ci(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", default="7,11", help="comma-separated generator seeds")
    parser.add_argument("--out", type=Path, default=Path("out/evaluate-loop"))
    args = parser.parse_args()
    results = []
    for name, rules, specs in SCENARIOS:
        for seed in (int(s) for s in args.seeds.split(",")):
            q = _run(name, rules, specs, seed, args)
            results.append({"scenario": name, "seed": seed, **q})
            if "variants" not in q:
                print(
                    f"{name:18} seed {seed:3}: true effect {q['true_effect']:+.3f}  measured {q['uplift_abs']:+.3f} "
                    f"{_ci(q['uplift_abs_ci95'])}  contains: {q['contains_true_effect']}  "
                    f"(naive treated rate {q['treated_rate']:.3f}; n {q['treated_n']} treated, {q['holdout_n']} held out)"
                )
                continue
            v = q["variants"]
            even = sum(arm["true_uplift"] for arm in v.values()) / len(v)
            got = sum(arm["rate"] * arm["n"] for arm in v.values() if arm["n"]) / max(1, sum(arm["n"] for arm in v.values()))
            arms = "  ".join(
                f"{n} true {a['true_uplift']:.3f} measured {a['uplift_abs']:+.3f} {_ci(a['uplift_abs_ci95'])} "
                f"share {a['share']:.2f} contains: {a['contains_true_uplift']}"
                for n, a in v.items()
            )
            print(
                f"{name:18} seed {seed:3}: {arms}  best {q['best_variant']} in last half {q['best_share_last_half']:.2f}; "
                f"click rate {got:.3f} vs {even:.3f} for an even split"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation-loop.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
