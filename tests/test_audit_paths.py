"""A newcomer's audit of output paths: a folder where a file belongs, or a file where a folder does.

``journeyflow generate --out data/`` and ``journeyflow report events.jsonl`` ended in a
Python traceback (``IsADirectoryError``, ``NotADirectoryError``) instead of the one line
and exit status 2 the README promises for errors an operator can fix.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_cli


def test_generate_into_a_folder_is_one_line(tmp_path: Path) -> None:
    result = run_cli("generate", "--users", "2", "--days", "1", "--seed", "1", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"journeyflow generate: --out {tmp_path} is a folder; give the events file's name (e.g. {tmp_path}/events.jsonl.gz)"
    ]


def test_generate_with_truth_into_a_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    result = run_cli("generate", "--users", "2", "--days", "1", "--seed", "1", "--out", str(out), "--truth", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"journeyflow generate: --truth {tmp_path} is a folder; give the truth file's name"
    ]
    assert not out.exists()


def test_a_report_of_a_file_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    result = run_cli("report", str(events))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"journeyflow: error: {events} must be a replay's output folder (with summary.json); got a file instead"
    ]
