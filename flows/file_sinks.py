"""Write a replay's outputs: JSON Lines part files per worker, combined in a stable order
when the run is over, and in-memory tallies and records.

The order of a combined file does not depend on the number of workers.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

__all__ = ["CollectSink", "JsonLinesSink", "TallySink", "combine_parts"]

_WRITE_SLICE = 1000
"""Records encoded and written at once by a part file (a replay's batches are about this size)."""


class _PartFile(StatelessSinkPartition[Any]):
    def __init__(self, path: Path, count_by: Callable[[Any], str] | None) -> None:
        self._fh = path.open("wb")
        self.counts: Counter[str] = Counter()
        self._count_by = count_by

    def write_batch(self, items: list[Any]) -> None:
        # (One join per slice: no generator, no copy of each line to add its newline.) In
        # slices: the end of input hands one batch of every user's final row, whose lines
        # and their join would otherwise all be in memory at once (issue 8's peak).
        for start in range(0, len(items), _WRITE_SLICE):
            lines = [item.to_json() for item in items[start : start + _WRITE_SLICE]]
            self._fh.write(b"\n".join(lines) + b"\n")
        self.counts["total"] += len(items)
        if self._count_by is not None:
            self.counts.update(self._count_by(item) for item in items)

    def close(self) -> None:
        self._fh.close()


class JsonLinesSink(DynamicSink[Any]):
    """Write records (anything with ``to_json()``) as JSON Lines.

    Each worker writes ``.<name>.part-<worker>`` in ``directory``;
    :func:`combine_parts` turns the parts into ``<name>`` once the run is over.
    ``counts`` holds the number written (``total``) and, with ``count_by``, a
    count per category (dead letters by code, say).
    """

    def __init__(
        self, directory: Path, name: str, count_by: Callable[[Any], str] | None = None
    ) -> None:
        self.directory = directory
        self.name = name
        self._count_by = count_by
        self._parts: list[_PartFile] = []

    @property
    def counts(self) -> Counter[str]:
        """Return what all workers wrote, in total and per category."""
        return sum((part.counts for part in self._parts), Counter())

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PartFile:
        # One partition per worker thread; each keeps its own counts (no shared writes).
        part = _PartFile(self.directory / f".{self.name}.part-{worker_index}", self._count_by)
        self._parts.append(part)
        return part


class _Tallies(StatelessSinkPartition[Any]):
    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.users: set[str] = set()

    def write_batch(self, items: list[Any]) -> None:
        for tally in items:
            self.totals["processed"] += tally.processed
            self.totals["duplicates"] += tally.duplicates
            self.totals["skipped"] += tally.skipped
            self.users.add(tally.user_id)


class TallySink(DynamicSink[Any]):
    """Add up the users' :class:`~journeyflow.step_records.Tally` records."""

    def __init__(self) -> None:
        self._parts: list[_Tallies] = []

    @property
    def totals(self) -> Counter[str]:
        """Return processed, duplicates and skipped over all users."""
        return sum((part.totals for part in self._parts), Counter())

    @property
    def users(self) -> set[str]:
        """Return every user that reported a tally."""
        return set().union(*(part.users for part in self._parts))

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Tallies:
        part = _Tallies()
        self._parts.append(part)
        return part


class _Collect(StatelessSinkPartition[Any]):
    def __init__(self) -> None:
        self.items: list[Any] = []

    def write_batch(self, items: list[Any]) -> None:
        self.items.extend(items)


class CollectSink(DynamicSink[Any]):
    """Keep the (few) records written, in memory: a replay's model report."""

    def __init__(self) -> None:
        self._parts: list[_Collect] = []

    @property
    def items(self) -> list[Any]:
        """Return every record written, by all workers."""
        return [item for part in self._parts for item in part.items]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collect:
        part = _Collect()
        self._parts.append(part)
        return part


def combine_parts(directory: Path, name: str, sort_key: Callable[[Any], Any] | None) -> int:
    """Combine the workers' part files into ``name``; return the line count.

    With ``sort_key`` (applied to each decoded record), lines are sorted, and
    the sort is stable, so one user's records keep their order. The result is
    the same whatever the number of workers.
    """
    parts = sorted(directory.glob(f".{name}.part-*"))
    target = directory / name
    if sort_key is None and len(parts) == 1:
        os.replace(parts[0], target)
        return sum(1 for _ in target.open("rb"))
    lines: list[bytes] = []
    for part in parts:
        with part.open("rb") as fh:
            lines.extend(fh)
    if sort_key is not None:
        lines.sort(key=lambda line: sort_key(orjson.loads(line)))
    with target.open("wb") as fh:
        fh.writelines(lines)
    for part in parts:
        part.unlink()
    return len(lines)
