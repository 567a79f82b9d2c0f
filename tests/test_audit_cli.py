"""A newcomer's audit of the command line: bad arguments stop at once, in one line.

Each case here was found by running the command as the README says, with a slip a user
makes: the argument must be refused before any work, with one line naming it, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ALLOW_DEFAULT_SALT, run_cli

EVENT = '{"event_id":"e1","type":"page_view","user_id":"u1","ts":"2026-11-01T10:00:00Z"}\n'


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "e.jsonl"
    path.write_text(EVENT)
    return path


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        # 0 was taken for "not given" and the replay ran with one worker.
        ("--workers", "0", "journeyflow: error: run.workers must be > 0; got 0 instead"),
        # A ValueError's traceback, not one line.
        ("--processes", "0", "journeyflow: error: --processes must be >= 1; got 0 instead"),
    ],
)
def test_a_count_below_one_is_refused(events: Path, tmp_path: Path, flag: str, value: str, message: str) -> None:
    out = tmp_path / "out"
    result = run_cli("replay", str(events), "--out", str(out), flag, value, env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
    assert not (out / "summary.json").exists()


def test_a_missing_truth_file_is_refused_before_the_replay(events: Path, tmp_path: Path) -> None:
    # It was found only after the whole replay, as "[Errno 2] No such file or directory: 'nope'".
    out = tmp_path / "out"
    truth = tmp_path / "nope.truth.jsonl"
    result = run_cli("replay", str(events), "--out", str(out), "--truth", str(truth), env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"journeyflow: error: truth file not found: {truth}"]
    assert not (out / "summary.json").exists()


def test_topics_create_refuses_zero_partitions() -> None:
    # 0 was taken for "not given": the [kafka] default was used without a word.
    result = run_cli("topics", "create", "--partitions", "0", env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["journeyflow: error: kafka.partitions must be > 0; got 0 instead"]


@pytest.mark.parametrize(
    ("process_id", "addresses", "message"),
    [
        # Process 2 of two: with a broker there, the worker hung for good, silent, deaf to SIGTERM.
        ("2", "127.0.0.1:2101;127.0.0.1:2102", "--process-id must be 0 .. 1 (one per address); got 2 instead"),
        ("-1", "127.0.0.1:2101;127.0.0.1:2102", "--process-id must be 0 .. 1 (one per address); got -1 instead"),
        ("0", "127.0.0.1:2101;nocolon", "--addresses must be host:port;host:port...; got 'nocolon' instead"),
    ],
)
def test_a_cluster_address_list_that_cannot_be_right_is_refused(process_id: str, addresses: str, message: str) -> None:
    result = run_cli("run", "--process-id", process_id, "--addresses", addresses, env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"journeyflow: error: {message}"]
