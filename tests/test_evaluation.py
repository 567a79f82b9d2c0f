"""Evaluation: real logs become events and a known future; reports name the target and a verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from config.settings import load_settings
from journeyflow import generator
from journeyflow.datasets import write_cdnow
from journeyflow.evaluate import evaluate, format_report
from journeyflow.evaluation import judge, margin_sd, reliability, reliability_gap_sd

MASTER = b"""customer_id date number_of_cds dollar_value
 00001 19970101 1 11.77
 00001 19970101 2 10.00
 00001 19970915 1 9.99
 00001 19971010 1 5.00
 00002 19970112 1 12.00
 00002 19971205 1 12.00
"""


def test_cdnow_becomes_one_purchase_per_customer_and_day_and_the_next_month_is_the_truth(tmp_path: Path) -> None:
    events, truth = tmp_path / "e.jsonl", tmp_path / "t.jsonl"
    stats = write_cdnow(MASTER, events, truth, horizon_days=30)
    written = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    assert stats.customers == 2 and stats.events == 3  # two lines of 1997-01-01 are one purchase
    assert [e["properties"]["revenue"] for e in written] == [21.77, 12.0, 9.99]
    assert all(e["type"] == "purchase" and e["properties"]["order_id"] == e["event_id"] for e in written)
    outcomes = {r["user_id"]: r for r in map(orjson.loads, truth.read_bytes().splitlines())}
    assert outcomes["cdnow-00001"]["churned"] is False and outcomes["cdnow-00001"]["purchases_in_horizon"] == 1
    assert outcomes["cdnow-00002"]["churned"] is True  # came back in December, after the horizon


def test_the_papers_sample_file_reads_the_same(tmp_path: Path) -> None:
    # CDNOW_sample.txt: no header, the master id first.
    sample = b"".join(b" 09999" + line + b"\n" for line in MASTER.splitlines()[1:])
    stats = write_cdnow(sample, tmp_path / "e.jsonl", tmp_path / "t.jsonl", horizon_days=30)
    assert stats.customers == 2 and stats.events == 3


def test_judge_reports_every_baseline_and_a_verdict() -> None:
    rows = []
    for i in range(60):
        active = i % 2 == 0
        profile = {
            "churn_risk": 0.2 if active else 0.8,
            "purchase_propensity": 0.7 if active else 0.1,
            "days_since_last_seen": 1.0 + i % 5 if active else 20.0 - i % 7,
            "days_since_first_seen": 40.0,
            "sessions_total": 8 if active else 2,
            "purchases_total": 3 if active else 0,
            "recency_days": 5.0 if active else None,
        }
        rows.append((profile, {"churned": not active, "purchases_in_horizon": int(active), "persona": "loyal" if active else "gone"}))
    figures = judge(rows, 30.0)
    # The batch fits' parameters, to set next to the models step's online ones.
    assert set(figures["bgnbd_params"]) == {"sessions", "purchases"}
    assert all(set(m) == {"r", "alpha", "a", "b"} and min(m.values()) > 0 for m in figures["bgnbd_params"].values())
    assert figures["churn"]["by_persona"] == {
        "gone": {"users": 30, "mean_score": 0.8, "observed": 1.0},
        "loyal": {"users": 30, "mean_score": 0.2, "observed": 0.0},
    }
    # A real log names no personas: no breakdown rather than one group of everyone.
    assert "by_persona" not in judge([(p, {**t, "persona": None}) for p, t in rows], 30.0)["churn"]
    for task in ("churn", "propensity"):
        q = figures[task]
        assert set(q["baselines"]) == {"recency", "frequency", "bgnbd"}
        assert q["auc"] == 1.0 and q["beats_baselines"] is True
        assert q["brier"] < 0.1 and q["reliability_max_gap"] is not None and q["reliability_gap_sd"] is not None
        assert q["margin"] == round(1.0 - q["baselines"][q["best_baseline"]], 4) and q["margin_sd"] is not None


def test_evaluate_prints_the_horizon_the_targets_and_a_verdict_per_row(tmp_path: Path) -> None:
    events, truth = tmp_path / "e.jsonl.gz", tmp_path / "t.jsonl"
    generator.generate(generator.GeneratorConfig(users=80, days=21, seed=5, mix="leavers"), events, truth)
    report = evaluate(tmp_path / "out", load_settings(), cache=tmp_path / "cache", files=(events, truth))
    text = format_report(report)
    assert "judged on the next 30 days" in text
    assert "churn risk: no activity at all" in text and "purchase propensity: a purchase" in text
    rows = [line for line in text.splitlines() if line.startswith("  churn risk") or line.startswith("  purchase")]
    assert len(rows) == 2 and all(("beats" in r) or ("LOSES" in r) or ("no verdict" in r) for r in rows)
    assert (tmp_path / "out" / "evaluation.json").exists()


def test_persona_mixes_change_the_population(tmp_path: Path) -> None:
    shares = {}
    for mix in generator.MIXES:
        truth = tmp_path / f"{mix}.truth.jsonl"
        generator.generate(generator.GeneratorConfig(users=400, days=14, seed=3, mix=mix), tmp_path / f"{mix}.jsonl", truth)
        rows = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
        shares[mix] = sum(r["persona"] == "churner" for r in rows) / len(rows)
    assert shares["leavers"] > 0.25 > shares["default"] > shares["casual"]


def test_the_margins_noise_shrinks_with_more_users_and_is_nil_for_the_same_ranking() -> None:
    rng = np.random.default_rng(4)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.random(n) < 0.3
        return y + rng.normal(0, 1, n), y + rng.normal(0, 1.2, n), y

    small, large = sample(200), sample(3200)
    assert margin_sd(*small) > 2 * margin_sd(*large)  # about sqrt(16) = 4 times
    scores, _, y = small
    assert margin_sd(scores, scores * 2 + 1, y) == 0.0  # the same order: no difference in any resample


def test_the_gaps_noise_says_when_a_tenth_near_the_judged_size_makes_the_gap() -> None:
    rng = np.random.default_rng(7)
    # 2,000 users calibrated in the 0.0-0.1 tenth, and 20 in the 0.4-0.5 tenth who all had the outcome.
    calibrated = rng.random(2000) * 0.1
    scores = np.concatenate([calibrated, np.full(20, 0.45)])
    labels = np.concatenate([rng.random(2000) < calibrated, np.ones(20, dtype=bool)])
    assert reliability(scores, labels)[1] > 0.5  # the small tenth is judged: the gap is its own
    # Some resamples hold fewer than 20 of it and judge the calibrated tenth alone: a gap near 0.
    assert reliability_gap_sd(scores, labels) > 0.2
    # Without the small tenth the gap is the calibrated one's, and so is its noise.
    assert reliability_gap_sd(scores[:2000], labels[:2000]) < 0.02
    assert reliability_gap_sd(scores, labels) == reliability_gap_sd(scores, labels)  # seeded: a report repeats
