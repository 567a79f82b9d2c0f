"""Read recorded event files for replays, merged by event time, with ticks and progress.

Input files are JSON Lines, plain or gzip (recognised by their magic bytes,
whatever their name). Several files are merged by event time, so a user's
events split across files (one file per hour, say) arrive in time order
instead of one file's events turning the other's into late events
(``shared/notes/bytewax-0.21.md``, trap 3). Each file's own order is kept:
a merge never reorders lines within a file.

Ticks and links are woven in by :mod:`flows.replay_clock` (its names are
re-exported here); outputs are written by :mod:`flows.file_sinks`.
"""

from __future__ import annotations

import gzip
import io
import heapq
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from itertools import islice
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.replay_clock import RUN_END, Owned, ReplayClock, replay_items
from journeyflow.event_parser import EventParser
from journeyflow.events import DeadLetter, Event


__all__ = [
    "replay_stream",
    "ReplayProgress",
    "ReplayClock",
    "REPLAY_BATCH",
    "ReplaySource",
    "replay_items",
    "RUN_END",
    "read_lines",
    "check_inputs",
    "print_progress",
]

_GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def _open(path: Path) -> Iterator[tuple[io.BufferedIOBase, IO[bytes]]]:
    """Open ``path`` for reading lines; yield (lines, underlying file for tell())."""
    raw = path.open("rb")
    try:
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                yield fh, raw
        else:
            raw.seek(0)
            yield raw, raw
    finally:
        raw.close()


def check_inputs(paths: list[Path]) -> None:
    """Raise IsADirectoryError naming every input that is a folder, else FileNotFoundError
    naming every input file that is not there."""
    # A folder is not expanded: which of its files, in which order, is the user's to say.
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        got = "a folder" if len(folders) == 1 else "folders"
        msg = f"input {', '.join(folders)} must be event files (.jsonl or .jsonl.gz); got {got} instead"
        raise IsADirectoryError(msg)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        msg = f"input file not found: {', '.join(missing)}"
        raise FileNotFoundError(msg)


def read_lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(line number, line without its newline, bytes read so far)``.

    A final line without a newline is still a line; an empty file has none.
    """
    with _open(path) as (lines, raw):
        # A plain file's position is the sum of the lines' lengths: no tell()
        # (an lseek system call) per line, about 2% of a replay in a profile.
        position = 0 if lines is raw else None
        for number, line in enumerate(lines, 1):
            if position is not None:
                position += len(line)
            if line.endswith(b"\n"):
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
            yield number, line, raw.tell() if position is None else position


@dataclass
class ReplayProgress:
    """Counts the replay source keeps; the replay command reads them at the end."""

    bytes_total: int = 0
    bytes_read: int = 0
    read: int = 0
    users: int = 0
    last_ts_ms: int | None = None
    finishing: bool = False
    """The clock is finishing the keys (:data:`flows.replay_clock.RUN_END` may follow)."""
    started: float = field(default_factory=time.monotonic)
    report: Callable[[ReplayProgress], None] | None = None
    report_every_s: float = 5.0
    _last_report: float = field(default_factory=time.monotonic)

    def tick(self) -> None:
        """Report progress if it is time to."""
        now = time.monotonic()
        if self.report is not None and now - self._last_report >= self.report_every_s:
            self._last_report = now
            self.report(self)


def _file_items(
    path: Path, label: str, parser: EventParser, progress: ReplayProgress, base: int
) -> Iterator[tuple[int, int, Event | DeadLetter]]:
    """Yield ``(merge key, line number, parsed line)`` for one file.

    A dead letter takes the event time of the last valid line before it, so
    it leaves the merge next to its neighbours.
    """
    last_ts = -1
    number = 0
    lines = read_lines(path)
    while True:
        try:
            number, line, position = next(lines)
        except StopIteration:
            return
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            # A gzip copy cut short or damaged: what was read stands, the rest is
            # one dead letter saying so (never a crash, never a silent drop).
            progress.read += 1
            yield last_ts, number + 1, parser.dead_letter(b"", f"{label}:{number + 1}", "truncated_input", _unreadable(number, error))
            return
        item = parser.parse(line, f"{label}:{number}")
        progress.read += 1
        progress.bytes_read = base + position
        if isinstance(item, Event):
            last_ts = item.ts_ms
        yield last_ts, number, item


def _unreadable(lines: int, error: Exception) -> str:
    """The reason of a compressed file's unreadable rest.

    >>> _unreadable(12, EOFError("Compressed file ended before the end-of-stream marker was reached"))
    'the file cannot be read after line 12 (Compressed file ended before the end-of-stream marker was reached): the rest of it is missing or damaged'
    """
    return f"the file cannot be read after line {lines} ({error}): the rest of it is missing or damaged"


def _merged(
    paths: list[Path], parser: EventParser, progress: ReplayProgress
) -> Iterator[Event | DeadLetter]:
    labels = [str(p) for p in paths]
    bases = []
    total = 0
    for path in paths:
        bases.append(total)
        total += path.stat().st_size
    progress.bytes_total = total
    if len(paths) == 1:
        for _, _, item in _file_items(paths[0], labels[0], parser, progress, 0):
            yield item
        return
    # (event time, file index, line) orders ties the same way on every run.
    streams = [
        ((key, index, number, item) for key, number, item in _file_items(p, lbl, parser, progress, b))
        for index, (p, lbl, b) in enumerate(zip(paths, labels, bases, strict=True))
    ]
    for _, _, _, item in heapq.merge(*streams, key=lambda entry: entry[:3]):
        yield item


def replay_stream(
    paths: list[Path],
    parser: EventParser,
    clock: ReplayClock,
    progress: ReplayProgress | None = None,
    *,
    finish: bool = False,
    owned: Owned | None = None,
) -> Iterator[Any]:
    """Yield what a replay's source emits for ``paths``: events and dead letters merged
    by event time, with the ticks and placeholders of :func:`replay_items` (and with
    ``finish``, each key's :class:`~journeyflow.step_records.Finish` and the batch ends;
    with ``owned``, only one cluster process's share)."""
    progress = progress if progress is not None else ReplayProgress()
    return replay_items(_merged(paths, parser, progress), clock, progress, finish=finish, owned=owned)


#: Lines a replay's source reads per batch: the unit the steps downstream take at once
#: (the recommender's catalog step works a batch at a time).
REPLAY_BATCH = 1000


class _ReplayPartition(StatefulSourcePartition[Any, None]):
    def __init__(
        self,
        paths: list[Path],
        parser: EventParser,
        progress: ReplayProgress,
        clock: ReplayClock,
        batch_size: int,
        finish: bool,
    ) -> None:
        self._items = replay_stream(paths, parser, clock, progress, finish=finish)
        self._progress = progress
        self._batch_size = batch_size
        self._rest: list[Any] = []
        """What followed a batch's end (:data:`~flows.replay_clock.RUN_END`) in the last read."""

    def next_batch(self) -> list[Any]:
        while True:
            batch = self._rest or list(islice(self._items, self._batch_size))
            self._rest = []
            if batch and self._progress.finishing:
                batch = self._cut(batch)
                if not batch:
                    continue
            self._progress.tick()
            if not batch:
                raise StopIteration()
            return batch

    def _cut(self, batch: list[Any]) -> list[Any]:
        """Return ``batch`` up to its first RUN_END; keep what follows for the next batch."""
        for i, item in enumerate(batch):
            if item is RUN_END:
                self._rest = batch[i + 1 :]
                return batch[:i]
        return batch

    def snapshot(self) -> None:
        # Replays are not resumed: a replay that stops is simply run again.
        return None


class ReplaySource(FixedPartitionedSource[Any, None]):
    """Read event files as one partition, merged by event time, then end the input.

    Emits :class:`Event` and :class:`DeadLetter` in merged order with
    :class:`~journeyflow.step_records.Tick` records woven in as event time passes (see
    :func:`replay_items`), the last of them at the replay's last event time.

    With ``finish`` (only a flow of one worker: the batch ends keep the models'
    order only there), each key's :class:`~journeyflow.step_records.Finish`
    follows, in batches that end where the clock says (:data:`RUN_END`).
    """

    def __init__(
        self,
        paths: list[Path],
        parser: EventParser,
        progress: ReplayProgress,
        clock: ReplayClock,
        batch_size: int = REPLAY_BATCH,
        *,
        finish: bool = False,
    ) -> None:
        check_inputs(paths)
        self._paths = paths
        self._parser = parser
        self._progress = progress
        self._clock = clock
        self._batch_size = batch_size
        self._finish = finish

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ReplayPartition:
        return _ReplayPartition(self._paths, self._parser, self._progress, self._clock, self._batch_size, self._finish)


def print_progress(progress: ReplayProgress) -> None:
    """Print one progress line to stderr."""
    elapsed = time.monotonic() - progress.started
    share = progress.bytes_read / progress.bytes_total if progress.bytes_total else 0.0
    rate = progress.read / elapsed if elapsed > 0 else 0.0
    print(
        f"replay: {share:6.1%} of input, {progress.read:,} lines, {rate:,.0f} lines/s",
        file=sys.stderr,
        flush=True,
    )
