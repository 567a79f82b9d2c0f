"""A newcomer's audit of paths: a folder where a file belongs, or a file where a folder does.

``journeyflow generate --out data/``, ``journeyflow report events.jsonl`` and
``journeyflow replay e.jsonl --out a-file`` ended in a Python traceback
(``IsADirectoryError``, ``NotADirectoryError``, ``FileExistsError``) instead of the one
line and exit status 2 the README promises for errors an operator can fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from journeyflow.cli import main
from tests.helpers import ALLOW_DEFAULT_SALT, run_cli


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


# A file where an output folder belongs, or in its path, and a folder where an input file
# belongs: each ended in a traceback (FileExistsError, NotADirectoryError, IsADirectoryError)
# or said "not found" of a folder that is there.

EVENT = '{"event_id":"e1","type":"page_view","user_id":"u1","ts":"2026-11-01T10:00:00Z"}\n'


def _one_line(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [line]


@pytest.mark.parametrize("under", [False, True])
def test_replay_out_on_a_file_is_one_line(tmp_path: Path, under: bool) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(EVENT)
    out = tmp_path / "out" / "x" if under else tmp_path / "out"
    (tmp_path / "out").write_text("")
    got = f"a file at {tmp_path / 'out'}" if under else "a file"
    _one_line(
        run_cli("replay", str(events), "--out", str(out), env=ALLOW_DEFAULT_SALT),
        f"journeyflow: error: --out {out} must be a folder (created if missing); got {got} instead",
    )


def test_evaluate_out_on_a_file_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("")
    for recommendations in ([], ["--recommendations"]):
        _one_line(
            run_cli("evaluate", *recommendations, "--users", "5", "--days", "2", "--out", str(out), env=ALLOW_DEFAULT_SALT),
            f"journeyflow: error: --out {out} must be a folder (created if missing); got a file instead",
        )


def test_a_folder_given_as_replay_input_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "e.jsonl").write_text(EVENT)
    _one_line(
        run_cli("replay", str(folder), "--out", str(tmp_path / "out"), env=ALLOW_DEFAULT_SALT),
        f"journeyflow: error: input {folder} must be event files (.jsonl or .jsonl.gz); got a folder instead",
    )
    assert not (tmp_path / "out").exists()


def test_generate_rules_on_a_folder_is_one_line(tmp_path: Path) -> None:
    _one_line(
        run_cli("generate", "--users", "2", "--days", "1", "--out", str(tmp_path / "e.jsonl"),
                "--respond", "cart_abandonment=0.5", "--rules", str(tmp_path)),
        f"journeyflow generate: --rules {tmp_path} is a folder; give the rules file's name",
    )


def test_generate_out_under_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("")
    out = blocker / "e.jsonl"
    _one_line(
        run_cli("generate", "--users", "2", "--days", "1", "--seed", "1", "--out", str(out)),
        f"journeyflow generate: --out {out} cannot be written: {blocker} is a file, not a folder",
    )


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["settings", "--config", "{dir}"], {}, "config file '{dir}' must be a TOML file; got a folder instead"),
        (["replay", "{events}", "--out", "{out}"], {"JOURNEYFLOW_SEGMENTS_RULES_FILE": "{dir}"},
         "segments.rules_file '{dir}' cannot be read: it is a directory"),
        (["replay", "{events}", "--out", "{out}", "--truth", "{dir}"], {}, "--truth {dir} is a folder; give the truth file's name"),
        (["evaluate", "--recommendations", "--users", "0", "--clicks", "{dir}", "--out", "{out}"], {},
         "input '{dir}' must be a click log or events file; got a folder instead"),
    ],
)
def test_a_folder_given_for_an_input_file_says_so(tmp_path: Path, args: list[str], env: dict[str, str], line: str) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(EVENT)
    names = {"dir": str(tmp_path), "events": str(events), "out": str(tmp_path / "out")}
    result = run_cli(*(a.format(**names) for a in args), env={**ALLOW_DEFAULT_SALT, **{k: v.format(**names) for k, v in env.items()}})
    _one_line(result, "journeyflow: error: " + line.format(**names))
    assert not (tmp_path / "out").exists()  # nothing is made before the error


def test_any_other_path_error_is_one_line_naming_the_path(tmp_path: Path) -> None:
    # No up-front check covers --cache: the system's error, worded, in one line.
    cache = tmp_path / "cache"
    cache.write_text("")
    _one_line(
        run_cli("evaluate", "--regimes", "cdnow", "--cache", str(cache), "--out", str(tmp_path / "out"), env=ALLOW_DEFAULT_SALT),
        f"journeyflow: error: {cache}: File exists (a file is there, where a folder is needed)",
    )


def test_a_permission_error_is_one_line_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests may run as root, whom no permission stops: the error is raised where the report is written.
    import journeyflow.report

    target = tmp_path / "report.html"

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(journeyflow.report, "write_report", refuse)
    assert main(["report", str(tmp_path), "-q"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"journeyflow: error: {target}: Permission denied"]
