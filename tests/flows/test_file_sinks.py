"""Part files: every record written once, in order, whatever the batch's size."""

from __future__ import annotations

from pathlib import Path

from flows.file_sinks import _WRITE_SLICE, JsonLinesSink


class _Line:
    def __init__(self, n: int) -> None:
        self.n = n

    def to_json(self) -> bytes:
        return b'{"n":%d}' % self.n


def test_a_batch_larger_than_a_slice_is_written_whole_and_in_order(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path, "out.jsonl")
    part = sink.build("write", 0, 1)
    sizes = [2 * _WRITE_SLICE + 7, 0, 1, _WRITE_SLICE]
    start = 0
    for size in sizes:
        part.write_batch([_Line(n) for n in range(start, start + size)])
        start += size
    part.close()
    (written,) = tmp_path.glob(".out.jsonl.part-*")
    assert written.read_bytes() == b"".join(b'{"n":%d}\n' % n for n in range(start))
    assert part.counts["total"] == start
