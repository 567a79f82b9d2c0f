"""Read a replay folder's outputs into the per-day series the report plots.

Everything comes from the files a replay wrote (``summary.json`` and the JSON
Lines outputs), so ``journeyflow report OUT_DIR`` rebuilds the same report
later, and nothing here slows the flow. Each output is read once, line by
line; only per-day counters and one set of segments per user are kept, so
memory grows with days and users, not with events.

Days are UTC calendar days taken from the records' timestamps, which the
outputs always write in UTC (``...Z``). A missing optional output (the
``conversions.jsonl`` of a build without the closed loop, say) reads as empty;
a missing ``summary.json`` is an error: the folder is not a replay's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from journeyflow.errors import JourneyflowError
from journeyflow.events import format_ts, parse_ts

__all__ = ["ReportData", "FUNNEL_STEPS", "REPORT_INPUTS", "joined", "read_outputs", "read_report_data", "day_of"]

FUNNEL_STEPS = ("product view", "add to cart", "checkout", "purchase")
"""The funnel's steps after "all"; a session (or customer) reaches a step when it
has at least one of that step's events and of every step before it."""

K = TypeVar("K")

_STEP_FIELDS = ("product_views", "add_to_cart", "checkouts", "purchases")


def day_of(ts: str) -> str:
    """Return the UTC day (``YYYY-MM-DD``) of an output timestamp.

    >>> day_of("2026-08-01T23:59:59.5Z")
    '2026-08-01'
    >>> day_of("2026-08-02T01:00:00+02:00")
    '2026-08-01'
    """
    if ts.endswith("Z"):
        return ts[:10]
    return format_ts(parse_ts(ts))[:10]


@dataclass(slots=True)
class ReportData:
    """What the report shows, gathered from one replay folder.

    Per-day series are dicts from day to a count; :meth:`days` gives the
    continuous range of days the outputs cover, so the plots show the quiet
    days as zeros instead of skipping them.
    """

    summary: dict[str, Any]
    events: Counter[str] = field(default_factory=Counter)
    """Events in sessions, by the day the session started."""
    sessions: Counter[str] = field(default_factory=Counter)
    customers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Users with a session starting that day."""
    revenue: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    funnel_sessions: list[int] = field(default_factory=lambda: [0] * (len(FUNNEL_STEPS) + 1))
    funnel_customers: list[int] = field(default_factory=lambda: [0] * (len(FUNNEL_STEPS) + 1))
    checkouts_recorded: bool = True
    """False when the sessions were written without a ``checkouts`` count (older outputs)."""
    entries: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Segment -> day -> users entering it."""
    exits: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    sizes: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    """Segment -> day -> members at the end of that day (days with a change only)."""
    final_sizes: Counter[str] = field(default_factory=Counter)
    """Members at the end, as the segment changes left them."""
    triggers: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """(rule, variant) -> day -> triggers; held-out would-be triggers have variant ``holdout``."""
    conversions: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Model -> final scores of the profiles (``profiles.jsonl``)."""
    first_day: str | None = None
    last_day: str | None = None

    def see_day(self, day: str) -> None:
        """Widen the covered range of days to include ``day``."""
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if self.last_day is None or day > self.last_day:
            self.last_day = day

    def days(self) -> list[str]:
        """Return every day from the first to the last one seen, in order."""
        if self.first_day is None or self.last_day is None:
            return []
        first, last = date.fromisoformat(self.first_day), date.fromisoformat(self.last_day)
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    def add(self, other: ReportData) -> None:
        """Add what ``other`` read (from other files) to this; the summary stays this one's.

        Adding each file's reading in :data:`REPORT_INPUTS` order gives what one
        reading of the files in that order gives, the order of every dict included
        (the charts list their series in it).
        """
        self.events.update(other.events)
        self.sessions.update(other.sessions)
        for day, users in other.customers.items():
            self.customers[day] |= users
        for day, revenue in other.revenue.items():
            self.revenue[day] += revenue
        self.funnel_sessions = [a + b for a, b in zip(self.funnel_sessions, other.funnel_sessions, strict=True)]
        self.funnel_customers = [a + b for a, b in zip(self.funnel_customers, other.funnel_customers, strict=True)]
        self.checkouts_recorded = self.checkouts_recorded and other.checkouts_recorded
        _add_counts(self.entries, other.entries)
        _add_counts(self.exits, other.exits)
        _add_counts(self.triggers, other.triggers)
        _add_counts(self.conversions, other.conversions)
        for segment, sizes in other.sizes.items():
            self.sizes[segment].update(sizes)
        self.final_sizes.update(other.final_sizes)
        for model, scores in other.scores.items():
            self.scores[model].extend(scores)
        for edge in (other.first_day, other.last_day):
            if edge is not None:
                self.see_day(edge)


def _add_counts(mine: dict[K, Counter[str]], theirs: dict[K, Counter[str]]) -> None:
    for key, counts in theirs.items():
        mine[key].update(counts)  # a defaultdict(Counter)


@contextmanager
def _reading(path: Path) -> Iterator[Iterator[dict[str, Any]]]:
    """Yield ``path``'s records (none if the file is absent); a malformed one is a one-line error with its line."""
    line_number = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal line_number
        if not path.exists():
            return
        with path.open("rb") as fh:
            for line_number, line in enumerate(fh, 1):  # noqa: B007 (read by the handler below)
                if line.strip():
                    yield orjson.loads(line)

    try:
        yield records()
    except orjson.JSONDecodeError as ex:
        msg = f"{path}:{line_number} must be a JSON object; got invalid JSON instead ({ex})"
        raise JourneyflowError(msg) from ex
    except (KeyError, TypeError, ValueError, AttributeError) as ex:
        msg = f"{path}:{line_number} must be a record as journeyflow writes it; got {type(ex).__name__}: {ex} instead"
        raise JourneyflowError(msg) from ex


def _reached(counts: list[int]) -> int:
    """Return how many funnel steps were reached in order (0 to len(FUNNEL_STEPS))."""
    steps = 0
    for count in counts:
        if count <= 0:
            break
        steps += 1
    return steps


def _read_sessions(data: ReportData, path: Path) -> None:
    reached_by_user: dict[str, int] = {}
    with _reading(path) as records:
        for session in records:
            day = day_of(session["start"])
            data.see_day(day)
            user = session["user_id"]
            data.events[day] += session["events"]
            data.sessions[day] += 1
            data.customers[day].add(user)
            data.revenue[day] += session.get("revenue") or 0.0
            if "checkouts" not in session:
                data.checkouts_recorded = False
            reached = _reached([session.get(f, 0) for f in _STEP_FIELDS])
            for step in range(reached + 1):
                data.funnel_sessions[step] += 1
            # A customer reaches a step when one of their sessions did.
            reached_by_user[user] = max(reached, reached_by_user.get(user, 0))
    for reached in reached_by_user.values():
        for step in range(reached + 1):
            data.funnel_customers[step] += 1


def _read_segment_changes(data: ReportData, path: Path) -> None:
    members: dict[str, frozenset[str]] = {}
    size: Counter[str] = Counter()
    day_of_sizes: str | None = None

    def close_day() -> None:
        if day_of_sizes is not None:
            for segment in set(size) | set(data.sizes):
                data.sizes[segment][day_of_sizes] = size[segment]

    with _reading(path) as records:
        for change in records:
            kind = change.get("kind")
            day = day_of(change["ts"])
            if day != day_of_sizes:
                close_day()
                day_of_sizes = day
                data.see_day(day)
            # Each change carries the user's full list; tombstones, consent refusals and
            # merges (the anonymous id has no profile of its own after it) leave every segment.
            user = change["anonymous_id"] if kind == "merge" else change["user_id"]
            before = members.get(user, frozenset())
            after = frozenset(change.get("segments", ())) if kind == "segment_change" else frozenset()
            for segment in after - before:
                data.entries[segment][day] += 1
                size[segment] += 1
            for segment in before - after:
                data.exits[segment][day] += 1
                size[segment] -= 1
            if after:
                members[user] = after
            else:
                members.pop(user, None)
    close_day()
    data.final_sizes = Counter({segment: count for segment, count in size.items() if count})


def _read_triggers(data: ReportData, path: Path, into: dict[tuple[str, str], Counter[str]]) -> None:
    with _reading(path) as records:
        for record in records:
            day = day_of(record["ts"])
            data.see_day(day)
            into[(record["rule"], record.get("variant") or "none")][day] += 1


def _read_profiles(data: ReportData, path: Path) -> None:
    with _reading(path) as records:
        for profile in records:
            for model in ("purchase_propensity", "churn_risk"):
                score = profile.get(model)
                if isinstance(score, int | float):
                    data.scores[model].append(float(score))


def _read_summary(out_dir: Path) -> dict[str, Any]:
    summary_path = out_dir / "summary.json"
    try:
        summary = orjson.loads(summary_path.read_bytes())
    except FileNotFoundError as ex:
        msg = f"{out_dir} must be a replay's output folder (with summary.json); got no summary.json there"
        raise JourneyflowError(msg) from ex
    except NotADirectoryError as ex:
        msg = f"{out_dir} must be a replay's output folder (with summary.json); got a file instead"
        raise JourneyflowError(msg) from ex
    except orjson.JSONDecodeError as ex:
        msg = f"{summary_path} must be a JSON object; got invalid JSON instead ({ex})"
        raise JourneyflowError(msg) from ex
    if not isinstance(summary, dict):
        msg = f"{summary_path} must be a JSON object; got {type(summary).__name__} instead"
        raise JourneyflowError(msg)
    return summary


REPORT_INPUTS: dict[str, Callable[[ReportData, Path], None]] = {
    "sessions.jsonl": _read_sessions,
    "segment_changes.jsonl": _read_segment_changes,
    "triggers.jsonl": lambda data, path: _read_triggers(data, path, data.triggers),
    "holdouts.jsonl": lambda data, path: _read_triggers(data, path, data.triggers),
    "conversions.jsonl": lambda data, path: _read_triggers(data, path, data.conversions),
    "profiles.jsonl": _read_profiles,
}
"""The outputs the report reads, in the order it reads them, and how it reads each."""


def read_outputs(out_dir: Path, files: list[str]) -> ReportData:
    """Read these of ``out_dir``'s outputs (names in :data:`REPORT_INPUTS`, in that order) into a
    :class:`ReportData` with an empty summary."""
    data = ReportData(summary={})
    for name in files:
        REPORT_INPUTS[name](data, out_dir / name)
    return data


def joined(parts: dict[str, ReportData], summary: dict[str, Any]) -> ReportData:
    """Return what reading every output gives, from each file's own reading (``parts``, by name)."""
    data = ReportData(summary=summary)
    for name in REPORT_INPUTS:
        data.add(parts[name])
    return data


def read_report_data(out_dir: Path, *, summary: dict[str, Any] | None = None) -> ReportData:
    """Read ``out_dir``'s outputs (and ``summary.json`` unless ``summary`` is given) into a :class:`ReportData`."""
    summary = _read_summary(out_dir) if summary is None else summary
    data = read_outputs(out_dir, list(REPORT_INPUTS))
    data.summary = summary
    return data
