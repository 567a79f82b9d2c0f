"""Read recorded event files for replays, merged by event time, with ticks and progress.

Input files are JSON Lines, plain or gzip (recognised by their magic bytes,
whatever their name). Several files are merged by event time, so a user's
events split across files (one file per hour, say) arrive in time order
instead of one file's events turning the other's into late events
(``shared/notes/bytewax-0.21.md``, trap 3). Each file's own order is kept:
a merge never reorders lines within a file.

Outputs are written by :mod:`flows.file_sinks`.
"""

from __future__ import annotations

import gzip
import io
import heapq
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from config.settings import Settings
from journeyflow.event_parser import EventParser
from journeyflow.events import IDENTITY_TYPES, DeadLetter, Event
from journeyflow.step_records import Expect, Tick


__all__ = [
    "replay_stream",
    "ReplayProgress",
    "ReplayClock",
    "ReplaySource",
    "replay_items",
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
    """Raise FileNotFoundError naming every input file that is not there."""
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
    for number, line, position in read_lines(path):
        item = parser.parse(line, f"{label}:{number}")
        progress.read += 1
        progress.bytes_read = base + position
        if isinstance(item, Event):
            last_ts = item.ts_ms
        yield last_ts, number, item


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


@dataclass(frozen=True)
class ReplayClock:
    """How a replay tells users that event time passed (see :class:`Tick`).

    Every ``tick_ms`` of event time (the merged input's latest time), each
    user seen within the last ``window_ms`` gets a tick; at the end, every
    user gets a last tick at the last event time (then the flow's end of
    input finishes everyone as of that time).
    """

    tick_ms: int
    window_ms: int
    link_idle_ms: int
    """A device link is forgotten after this much silence of the device (as the device step does)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayClock:
        """Return the clock of a replay with ``settings``."""
        return cls(
            tick_ms=settings.replay.tick_s * 1000,
            window_ms=settings.replay.tick_window_s * 1000,
            link_idle_ms=settings.identity.link_idle_s * 1000,
        )


def replay_items(
    items: Iterable[Event | DeadLetter], clock: ReplayClock, progress: ReplayProgress
) -> Iterator[Any]:
    """Yield ``items`` with the replay's ticks woven in.

    Deterministic: ticks depend only on the input, never on the wall clock.
    Events and ticks carry their position (``seq``), so a step that receives
    one user's items along two paths applies those that arrive together in
    input order (see :func:`operators.in_order.in_input_order`).

    Links are followed here as the device step follows them (``login`` /
    ``identify`` links, the latest wins, ``link_idle_ms`` of silence forgets):
    a linked device's events go straight to its customer, marked with the
    customer as ``user``; each login goes to its device, and an
    :class:`Expect` tells the customer where in the input it stands (see
    :func:`operators.in_order.in_input_order`). Ticks go to the keys that hold
    state: customers, and anonymous devices not linked (``Tick.device``).
    """
    recent: dict[str, int] = {}  # key -> latest event time, least recently seen first
    devices: set[str] = set()  # keys that are anonymous devices
    linked: dict[str, tuple[str, int]] = {}  # device -> (its customer, the device's latest event time)
    next_tick: int | None = None
    last_ts: int | None = None
    seq = itertools.count(1)
    for item in items:
        expect = None
        if isinstance(item, Event):
            ts = item.ts_ms
            if next_tick is None:
                next_tick = (ts // clock.tick_ms + 1) * clock.tick_ms
            while ts >= next_tick:
                yield from _ticks(recent, devices, next_tick, next_tick - clock.window_ms, seq)
                next_tick += clock.tick_ms
            position = next(seq)
            key = item.user
            if item.user_id is None:
                link = linked.get(key)
                if link is not None and ts - link[1] > clock.link_idle_ms:
                    del linked[key]
                    link = None
                if link is None:
                    devices.add(key)
                else:
                    linked[key] = (link[0], max(ts, link[1]))
                    key = link[0]
            elif item.anonymous_id is not None and item.type in IDENTITY_TYPES:
                device = item.anonymous_id
                seen = max(ts, linked[device][1]) if device in linked else ts
                linked[device] = (item.user_id, seen)
                expect = Expect(item.user_id, position)
            # Re-inserting moves the key to the end: the dict stays in recency order.
            recent.pop(key, None)
            recent[key] = ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
            # _make of a spliced tuple: half the cost of _replace, on every event.
            item = Event._make((item[0], item[1], key, *item[3:-1], position))
        yield item
        if expect is not None:
            yield expect
    progress.last_ts_ms = last_ts
    progress.users = len(recent)
    if last_ts is not None:
        # Everyone learns what time it is, so that every label that can be
        # known is learned before anyone's final scores are taken (at the end
        # of input, which the steps hear from bytewax after every item).
        yield from (Tick(last_ts, key, next(seq), key in devices) for key in recent)


def replay_stream(
    paths: list[Path], parser: EventParser, clock: ReplayClock, progress: ReplayProgress | None = None
) -> Iterator[Any]:
    """Yield what a replay's source emits for ``paths``: events and dead letters merged
    by event time, with the ticks and placeholders of :func:`replay_items`."""
    progress = progress if progress is not None else ReplayProgress()
    return replay_items(_merged(paths, parser, progress), clock, progress)


def _ticks(
    recent: dict[str, int], devices: set[str], at_ms: int, since_ms: int, seq: Iterator[int]
) -> Iterator[Tick]:
    for key in reversed(recent):
        if recent[key] < since_ms:
            break
        yield Tick(at_ms, key, next(seq), key in devices)


class _ReplayPartition(StatefulSourcePartition[Any, None]):
    def __init__(
        self,
        paths: list[Path],
        parser: EventParser,
        progress: ReplayProgress,
        clock: ReplayClock,
        batch_size: int,
    ) -> None:
        self._items = replay_stream(paths, parser, clock, progress)
        self._progress = progress
        self._batch_size = batch_size

    def next_batch(self) -> list[Any]:
        batch = list(islice(self._items, self._batch_size))
        self._progress.tick()
        if not batch:
            raise StopIteration()
        return batch

    def snapshot(self) -> None:
        # Replays are not resumed: a replay that stops is simply run again.
        return None


class ReplaySource(FixedPartitionedSource[Any, None]):
    """Read event files as one partition, merged by event time, then end the input.

    Emits :class:`Event` and :class:`DeadLetter` in merged order with
    :class:`Tick` records woven in as event time passes (see
    :func:`replay_items`), the last of them at the replay's last event time.
    """

    def __init__(
        self,
        paths: list[Path],
        parser: EventParser,
        progress: ReplayProgress,
        clock: ReplayClock,
        batch_size: int = 1000,
    ) -> None:
        check_inputs(paths)
        self._paths = paths
        self._parser = parser
        self._progress = progress
        self._clock = clock
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ReplayPartition:
        return _ReplayPartition(self._paths, self._parser, self._progress, self._clock, self._batch_size)


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
