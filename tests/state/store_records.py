"""Records for the profile store tests (``test_store_*.py``): rows and segment changes at a fixed time."""

from __future__ import annotations

from typing import Any

from journeyflow.records import ProfileRow, SegmentChange


TS = 1_795_343_460_000  # 2026-11-22T10:31:00Z


def row(user: str, ts_ms: int = TS, segments: tuple[str, ...] | None = None, **fields: Any) -> ProfileRow:
    return ProfileRow(user, ts_ms, fields, segments)


def change(user: str, entered: tuple[str, ...], exited: tuple[str, ...], segments: tuple[str, ...]) -> SegmentChange:
    return SegmentChange(user, TS, entered, exited, segments, "e1", {})
