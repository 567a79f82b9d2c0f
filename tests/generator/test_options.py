"""The generator's configuration checks and its command line (``journeyflow generate``)."""

from __future__ import annotations

import argparse
import gzip
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from journeyflow.errors import ConfigError
from journeyflow.generator import GeneratorConfig
from journeyflow.generator_cli import add_arguments, run
from tests.generator.generated import ts_ms


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="users must be an integer >= 1; got 0 instead"):
        GeneratorConfig(users=0)
    with pytest.raises(ConfigError, match="duplicate_share must be between 0 and 1; got 1.5 instead"):
        GeneratorConfig(duplicate_share=1.5)
    with pytest.raises(ConfigError, match="must add up to <= 1"):
        GeneratorConfig(out_of_order_share=0.6, late_share=0.6)
    with pytest.raises(ConfigError, match="start must be timezone-aware"):
        GeneratorConfig(start=datetime(2026, 8, 1))


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_run_writes_events_and_truth_next_to_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sample" / "events.jsonl.gz"
    status = run(_parse("--users", "30", "--days", "5", "--start", "2026-09-01", "--out", str(out)))
    assert status == 0
    rows = [orjson.loads(row) for row in (tmp_path / "sample" / "events.truth.jsonl").read_bytes().splitlines()]
    assert len(rows) == 30
    assert all(row["sessions"][0]["start"].startswith("2026-09-0") for row in rows)
    first = orjson.loads(gzip.decompress(out.read_bytes()).split(b"\n", 1)[0])
    assert ts_ms(first["ts"]) >= datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp() * 1000
    summary = capsys.readouterr().err
    assert summary.count("\n") == 1 and "events for 30 users" in summary


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--users", "0"), "users must be an integer >= 1; got 0 instead"),
        (("--days", "-3"), "days must be an integer >= 1; got -3 instead"),
        (("--start", "2026-13-01"), "start must be a date like 2026-08-01; got '2026-13-01' instead"),
        (("--late", "2"), "late_share must be between 0 and 1; got 2.0 instead"),
    ],
)
def test_run_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "events.jsonl"
    assert run(_parse(*argv, "--out", str(out))) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
