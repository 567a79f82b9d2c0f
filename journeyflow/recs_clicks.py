"""Click logs for ``journeyflow evaluate --recommendations``: sessions of product clicks.

Three sources, each read into :class:`Click` rows: journeyflow event files
(product views, cut into sessions by 30 minutes without one), CSV click logs
(a session, an item and a time column), and MovieLens 100k as RecBole's
wheel ships it (``recbole:ml-100k``, fetched with pip at evaluation time).
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from journeyflow.errors import JourneyflowError

__all__ = ["Click", "ML100K", "check_sources", "iter_sources", "read_click_log", "read_events", "read_ml100k"]

_GAP_MS = 30 * 60_000


class Click(NamedTuple):
    """One click of a session."""

    session: str
    ts_ms: int
    item: str
    category: str | None = None


def read_events(path: Path, gap_ms: int = _GAP_MS) -> list[Click]:
    """Return the product views of journeyflow events (JSON Lines, plain or gzip) as clicks.

    A user's views are cut into sessions by ``gap_ms`` of inactivity; lines
    that are not valid product views are skipped.
    """
    views: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for line in fh:
            if b'"product_view"' not in line:
                continue
            try:
                doc = orjson.loads(line)
                props = doc.get("properties") or {}
                ts = doc["ts"]
                ts_ms = ts if isinstance(ts, int) else _iso_ms(ts)
                user = doc.get("user_id") or doc.get("anonymous_id")
                item = props.get("product_id")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
            if doc.get("type") == "product_view" and user and item is not None:
                views[str(user)].append((ts_ms, str(item), props.get("category")))
    clicks: list[Click] = []
    for user, rows in views.items():
        rows.sort()
        number, last = 0, None
        for ts_ms, item, category in rows:
            if last is not None and ts_ms - last > gap_ms:
                number += 1
            last = ts_ms
            clicks.append(Click(f"{user}#{number}", ts_ms, item, category))
    return clicks


def _iso_ms(text: str) -> int:
    from journeyflow.events import parse_ts

    return parse_ts(text)


_COLUMNS = {
    "session": ("session_id", "sessionid", "session"),
    "item": ("item_id", "itemid", "item", "product_id"),
    "ts": ("timestamp", "ts", "time", "timeframe"),
    "category": ("category", "category_id", "categoryid"),
}


def read_click_log(path: Path) -> list[Click]:
    """Return the clicks of a CSV click log (plain or gzip; ``,``, ``;`` or tab separated).

    The header names the columns: a session (``session_id``, ``sessionId``),
    an item (``item_id``, ``itemId``) and a time (``timestamp``: epoch
    seconds or milliseconds, or ISO 8601; ``timeframe``: milliseconds);
    ``category`` is optional. ``eventdate`` (a day) orders sessions when
    the time is relative to the session (as in the CIKM Cup 2016 log).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        head = fh.readline()
        delimiter = max((",", ";", "\t"), key=head.count)
        names = [n.strip().lower() for n in next(csv.reader([head], delimiter=delimiter))]
        index = {}
        for role, options in _COLUMNS.items():
            index[role] = next((names.index(o) for o in options if o in names), None)
        if index["session"] is None or index["item"] is None or index["ts"] is None:
            msg = f"click log {str(path)!r} must name session, item and time columns; got {names} instead"
            raise JourneyflowError(msg)
        day = names.index("eventdate") if "eventdate" in names else None
        clicks = []
        for row in csv.reader(fh, delimiter=delimiter):
            if len(row) != len(names):
                continue
            ts_ms = _click_ms(row[index["ts"]], row[day] if day is not None else None)
            if ts_ms is None:
                continue
            category = row[index["category"]] if index["category"] is not None else None
            clicks.append(Click(row[index["session"]], ts_ms, row[index["item"]], category or None))
    return clicks


def _click_ms(text: str, day: str | None) -> int | None:
    try:
        value = float(text)
    except ValueError:
        try:
            return _iso_ms(text.strip().replace(" ", "T") + ("" if text.strip().endswith("Z") else "Z"))
        except Exception:
            return None
    ms = int(value * 1000) if value < 1e11 else int(value)
    if day:
        try:
            return _iso_ms(f"{day.strip()}T00:00:00Z") + ms
        except Exception:
            return None
    return ms


#: A public interaction log a PyPI package ships: MovieLens 100k (943 users rating
#: 1,682 films, with times) inside RecBole's wheel. Only the wheel is downloaded
#: (pip, no install, no dependencies), into the working folder, at evaluation time.
_ML100K_PACKAGE = "recbole==1.2.1"
_ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
ML100K = "recbole:ml-100k"


def read_ml100k(cache: Path, gap_ms: int = 60 * 60_000) -> list[Click]:
    """Return MovieLens 100k as clicks: each user's ratings in time order, cut into
    sessions by ``gap_ms`` without a rating (fetched with pip into ``cache``)."""
    import subprocess
    import sys
    import zipfile

    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", _ML100K_PACKAGE, "-d", str(cache)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
        if done.returncode != 0 or not wheels:
            msg = f"cannot fetch {_ML100K_PACKAGE} with pip: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
            raise JourneyflowError(msg)
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(_ML100K_MEMBER) as fh:
        for number, raw in enumerate(fh):
            parts = raw.decode().rstrip("\n").split("\t")
            if number == 0 or len(parts) < 4:
                continue
            rows[parts[0]].append((int(float(parts[3]) * 1000), parts[1]))
    clicks = []
    for user, ratings in rows.items():
        ratings.sort()
        session, last = 0, None
        for ts_ms, item in ratings:
            if last is not None and ts_ms - last > gap_ms:
                session += 1
            last = ts_ms
            clicks.append(Click(f"{user}#{session}", ts_ms, item))
    return clicks


def check_sources(paths: Iterable[Path]) -> None:
    """Raise ``JourneyflowError`` for an input that is a folder or missing, before anything is written."""
    for path in paths:
        if str(path) == ML100K:
            continue
        if path.is_dir():
            msg = f"input {str(path)!r} must be a click log or events file; got a folder instead"
            raise JourneyflowError(msg)
        if not path.is_file():
            msg = f"input {str(path)!r} does not exist"
            raise JourneyflowError(msg)


def iter_sources(paths: Iterable[Path], cache: Path) -> Iterator[tuple[str, list[Click]]]:
    """Yield ``(name, clicks)`` per input: journeyflow events (``.jsonl``), a click log,
    or ``recbole:ml-100k`` (see :func:`read_ml100k`); :func:`check_sources` first."""
    for path in paths:
        if str(path) == ML100K:
            yield ML100K, read_ml100k(cache)
            continue
        jsonl = ".jsonl" in path.name or ".json" in path.name
        yield path.name, read_events(path) if jsonl else read_click_log(path)
