"""read_lines: lines without their endings, and the bytes read so far after each (progress);
the replay source's batches."""

from __future__ import annotations

import gzip
from itertools import groupby
from pathlib import Path
from typing import Any

from flows.files import RUN_END, ReplayClock, ReplayProgress, ReplaySource, _merged, read_lines, replay_stream
from flows.step_configs import event_parser
from journeyflow.events import DeadLetter, Event
from journeyflow.step_records import Finish
from tests.helpers import at, event, settings, write_events


def test_plain_file_positions_are_the_bytes_read(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":22}\r\n\n{"c":3}')
    assert list(read_lines(path)) == [(1, b'{"a":1}', 8), (2, b'{"b":22}', 18), (3, b"", 19), (4, b'{"c":3}', 26)]
    assert list(read_lines(path))[-1][2] == path.stat().st_size


def test_gzip_positions_are_the_compressed_file_position(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(b"x\n" * 50_000))
    lines = list(read_lines(path))
    assert [line for _, line, _ in lines] == [b"x"] * 50_000
    positions = [position for _, _, position in lines]
    assert positions == sorted(positions)
    assert positions[-1] == path.stat().st_size


def test_empty_file_has_no_lines(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(read_lines(path)) == []


def _phase(item: Any) -> str:
    if isinstance(item, Finish):
        return "finish device" if item.device else "finish customer"
    return "input"


def _batches(source: ReplaySource) -> list[list[Any]]:
    part = source.build_part("read", "replay", None)
    batches: list[list[Any]] = []
    while True:
        try:
            batches.append(part.next_batch())
        except StopIteration:
            return batches


def test_a_finishing_source_ends_a_batch_before_the_first_finish_and_before_the_first_customers(tmp_path: Path) -> None:
    cfg = settings()
    docs = [event("page_view", user=f"u{i}", ts=at(i)) for i in range(7)]
    docs.append({**event("page_view", user="x", ts=at(8)), "anonymous_id": "dev"})
    del docs[-1]["user_id"]
    path = write_events(tmp_path / "in.jsonl", docs)
    clock = ReplayClock.from_settings(cfg)
    finishing = _batches(ReplaySource([path], event_parser(cfg), ReplayProgress(), clock, batch_size=4, finish=True))
    phases = [{_phase(item) for item in batch} for batch in finishing]
    # No batch mixes the last ticks with a finish, or a device's finish with a customer's.
    assert all(len(phase) == 1 for phase in phases), phases
    assert [phase for phase, _ in groupby(min(phase) for phase in phases)] == ["input", "finish device", "finish customer"]
    assert max(len(batch) for batch in finishing) == 4
    # The same items as the clock's, in the same order; without finish, no Finish at all.
    items = [item for batch in finishing for item in batch]
    assert items == [i for i in replay_stream([path], event_parser(cfg), clock, finish=True) if i is not RUN_END]
    plain = [item for batch in _batches(ReplaySource([path], event_parser(cfg), ReplayProgress(), clock)) for item in batch]
    assert plain == [item for item in items if not isinstance(item, Finish)]


def test_a_gzip_file_cut_short_keeps_what_was_read_and_dead_letters_the_rest(tmp_path: Path) -> None:
    whole = write_events(tmp_path / "whole.jsonl.gz", [event("page_view", f"u{i}", at(i)) for i in range(2_000)])
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a copy interrupted half-way
    progress = ReplayProgress()
    items = list(_merged([cut], event_parser(settings()), progress))
    events = [i for i in items if isinstance(i, Event)]
    assert 0 < len(events) < 2_000
    [letter] = [i for i in items if isinstance(i, DeadLetter)]
    assert items[-1] is letter and letter.code == "truncated_input"
    assert letter.source == f"{cut}:{len(events) + 1}"
    assert f"cannot be read after line {len(events)}" in letter.reason
    assert progress.read == len(events) + 1  # every line read, and the unreadable rest, counted once
