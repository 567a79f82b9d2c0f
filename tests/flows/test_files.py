"""read_lines: lines without their endings, and the bytes read so far after each (progress)."""

from __future__ import annotations

import gzip
from pathlib import Path

from flows.files import read_lines


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
