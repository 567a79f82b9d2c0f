"""The command line as a user runs it: one-line errors, generate then replay."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tests.helpers import ALLOW_DEFAULT_SALT, run_cli

def test_a_missing_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"journeyflow: error: input file not found: {tmp_path / 'nope.jsonl'}"]


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = run_cli("replay", str(events), "--out", str(tmp_path / "out"), env={"JOURNEYFLOW_SESSIONS_GAP_S": "-5"})
    assert result.returncode == 2
    assert result.stderr.strip() == "journeyflow: error: sessions.gap_s must be > 0; got -5 instead"


def test_a_broken_rule_is_one_line_and_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[segments.big]\nwhen = "revenue_totl > 5"\n')
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = run_cli("replay", str(events), "--out", str(tmp_path / "out"), env={"JOURNEYFLOW_SEGMENTS_RULES_FILE": str(rules)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("journeyflow: error: segment 'big': unknown variable(s) revenue_totl")


def test_generate_then_replay_with_truth(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl.gz"
    generated = run_cli("generate", "--users", "60", "--days", "10", "--seed", "3", "--out", str(events))
    assert generated.returncode == 0, generated.stderr
    truth = tmp_path / "events.truth.jsonl"
    assert truth.exists()
    out = tmp_path / "out"
    # A small data set: let the models score from the first example.
    replayed = run_cli(
        "replay", str(events), "--out", str(out), "--truth", str(truth), "-q", env={"JOURNEYFLOW_MODELS_MIN_EXAMPLES": "0"}
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "every line accounted for: yes" in replayed.stdout
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["accounted"] and summary["read"] > 1000
    assert summary["models"]["quality"]["users"] > 0
    assert (out / "models.bin").stat().st_size > 0


def test_a_backfill_warms_up_the_models_of_the_nextrun_cli(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    assert run_cli("generate", "--users", "80", "--days", "20", "--seed", "4", "--out", str(events)).returncode == 0
    first = tmp_path / "first"
    assert run_cli("replay", str(events), "--out", str(first), "-q").returncode == 0
    learned = orjson.loads((first / "summary.json").read_bytes())["models"]["tasks"]["churn"]["examples"]
    assert learned > 0
    second = tmp_path / "second"
    warm = {"JOURNEYFLOW_MODELS_WARM_START": str(first / "models.bin")}
    assert run_cli("replay", str(events), "--out", str(second), "-q", env=warm).returncode == 0
    again = orjson.loads((second / "summary.json").read_bytes())["models"]["tasks"]["churn"]["examples"]
    assert again == 2 * learned  # it went on from what the backfill had learned
    broken = run_cli("replay", str(events), "--out", str(tmp_path / "third"), "-q", env={"JOURNEYFLOW_MODELS_WARM_START": str(events)})
    assert broken.returncode == 2 and "cannot decode ModelState snapshot" in broken.stderr


def test_verbose_goes_before_or_after_the_subcommand() -> None:
    from journeyflow.cli import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands.choices:
        assert any("-v" in a.option_strings for a in commands.choices[name]._actions), name
    assert parser.parse_args(["-v", "replay", "x", "--out", "o"]).verbose == 1
    assert parser.parse_args(["replay", "-v", "x", "--out", "o"]).verbose == 1
    assert parser.parse_args(["replay", "x", "--out", "o"]).verbose == 0


def test_evaluate_recommendations_on_a_click_log_and_generated_sessions(tmp_path: Path) -> None:
    # Every option but the size given: the command used to stop on a TypeError without --users.
    clicks = tmp_path / "clicks.csv"
    rows = [f"s{s},p{(s + i) % 7},{s * 1000 + i}" for s in range(120) for i in range(4)]
    clicks.write_text("session_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    result = run_cli("evaluate", "--recommendations", "--clicks", str(clicks), "--users", "40", "--days", "3",
                  "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = orjson.loads((tmp_path / "out" / "recommendations.json").read_bytes())
    assert set(report) == {"clicks.csv", "events-40u-3d-11.jsonl.gz"}
    bad = run_cli("evaluate", "--recommendations", "--users", "-1", "--out", str(tmp_path / "out2"))
    assert bad.returncode == 2
    assert bad.stderr.strip() == "journeyflow: error: --users must be >= 0 and --days >= 1; got -1 and 30 instead"


def test_evaluate_recommendations_defaults_to_the_readmes_generated_regime() -> None:
    from journeyflow.recs_eval import generated_regime

    assert generated_regime(None, None, None) == (5000, 30, 11)
    assert generated_regime(0, 7, None) == (0, 7, 11)


def test_the_summary_says_what_its_segment_changes_count(tmp_path: Path) -> None:
    # The line read "segment changes 3   tombstones 1, identity merges 1": the count is of
    # `segment_change` records only, while segment_changes.jsonl also holds the other two.
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id":"e1","type":"page_view","anonymous_id":"a1","ts":"2026-11-01T10:00:00Z"}\n'
        '{"event_id":"e2","type":"page_view","user_id":"u2","ts":"2026-11-01T10:00:00Z"}\n'
        '{"event_id":"e3","type":"login","user_id":"u1","anonymous_id":"a1","ts":"2026-11-01T10:05:00Z"}\n'
        '{"event_id":"e4","type":"forget","user_id":"u2","ts":"2026-11-01T10:06:00Z"}\n'
    )
    out = tmp_path / "out"
    result = run_cli("replay", str(events), "--out", str(out), "-q", env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 0, result.stderr
    kinds = [orjson.loads(line)["kind"] for line in (out / "segment_changes.jsonl").read_bytes().splitlines()]
    assert sorted(kinds) == ["merge", "segment_change", "segment_change", "segment_change", "tombstone"]
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["segment_changes"], summary["tombstones"], summary["identity_merges"]) == (3, 1, 1)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("  segment changes")]
    assert line == (
        "  segment changes        3   times a user's segments changed; with tombstones 1 and identity merges 1 "
        "(anonymous devices joined to customers): 5 records in segment_changes.jsonl"
    )
