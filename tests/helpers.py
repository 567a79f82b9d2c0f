"""Shared test helpers: build events, write them as files, replay them, read outputs."""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from config.settings import Settings, load_settings
from flows.replay import replay

T0 = datetime(2026, 8, 3, 9, 0, tzinfo=timezone.utc)
_ids = itertools.count(1)


class ShopperEvent(NamedTuple):
    """A customer's event as the recommender's in-process chain reads it (``Chain.event``)."""

    user: str
    type: str
    ts_ms: int
    product_id: str | None
    category: str | None = None
    items: tuple[Any, ...] = ()


def at(minutes: float = 0, *, hours: float = 0, days: float = 0) -> str:
    """Return an RFC 3339 time that many minutes/hours/days after T0."""
    when = T0 + timedelta(minutes=minutes, hours=hours, days=days)
    return when.isoformat().replace("+00:00", "Z")


def event(kind: str, user: str = "u1", ts: str | int | None = None, **props: Any) -> dict[str, Any]:
    """Return a valid event of ``kind`` (extra keyword arguments become properties)."""
    doc: dict[str, Any] = {
        "event_id": props.pop("event_id", f"e-{next(_ids)}"),
        "type": kind,
        "user_id": user,
        "ts": ts if ts is not None else at(),
    }
    for key in ("context", "traits", "anonymous_id"):
        if key in props:
            doc[key] = props.pop(key)
    if kind in ("product_view", "add_to_cart", "remove_from_cart"):
        props.setdefault("product_id", "sku-1")
        props.setdefault("category", "fashion")
        props.setdefault("price", 59.0)
    if kind == "purchase":
        props.setdefault("order_id", f"o-{next(_ids)}")
        props.setdefault("revenue", 59.0)
    if props:
        doc["properties"] = props
    return doc


def write_events(path: Path, events: list[dict[str, Any] | bytes]) -> Path:
    """Write events (dicts, or raw bytes lines) as JSON Lines; gzip if the name ends .gz."""
    data = b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Return the records of a JSON Lines file."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def settings(**overrides: dict[str, Any]) -> Settings:
    """Return default settings with section overrides, ignoring the environment."""
    return load_settings(env={}, overrides=overrides)


class Replayed:
    """The outputs of one replay, by name."""

    def __init__(self, out: Path, summary: dict[str, Any]) -> None:
        self.out = out
        self.summary = summary

    def __getattr__(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl(self.out / f"{name}.jsonl")


def run_replay(
    tmp_path: Path,
    events: list[dict[str, Any] | bytes],
    *,
    cfg: Settings | None = None,
    workers: int = 1,
    name: str = "events.jsonl",
) -> Replayed:
    """Write ``events`` to a file in ``tmp_path``, replay it, return the outputs."""
    source = write_events(tmp_path / name, events)
    out = tmp_path / f"out-{name}-{workers}"
    summary = replay([source], out, cfg or settings(), workers=workers, show_progress=False)
    return Replayed(out, summary)


#: The project's root (where ``python -m journeyflow.cli`` runs).
ROOT = Path(__file__).resolve().parent.parent


#: Lets a command run with the shipped salt (tests' data is not personal).
ALLOW_DEFAULT_SALT = {"JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT": "true"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``journeyflow ARGS`` in a fresh interpreter, with ``env`` over this one's environment."""
    return subprocess.run(
        [sys.executable, "-m", "journeyflow.cli", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def cli_ok(*args: str) -> None:
    """Run ``journeyflow ARGS`` (the shipped salt allowed) and require success."""
    result = run_cli(*args, env=ALLOW_DEFAULT_SALT)
    assert result.returncode == 0, result.stderr
