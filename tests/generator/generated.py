"""Generated data sets, loaded and parsed for the generator tests (``tests/generator/``)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson

from journeyflow.events import EVENT_TYPES, parse_ts
from journeyflow.generator import GeneratorConfig, GeneratorStats, generate


CHANNELS = {"web", "app", "email", "pos"}
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SESSION_GAP_MS = 30 * 60 * 1000
MINUTE_MS = 60 * 1000


@dataclass(frozen=True)
class Dataset:
    """One generated data set, parsed."""

    config: GeneratorConfig
    stats: GeneratorStats
    raw: bytes
    lines: list[bytes]
    events: list[tuple[int, dict]]  # (line number, event) of every valid line, duplicates included
    invalid: list[tuple[bytes, str]]  # (line, reason)
    truth: dict[str, dict]


def ts_ms(value: object) -> int:
    """Return an event's ts as epoch ms; strings must have millisecond precision and a Z."""
    if isinstance(value, str) and not RFC3339_MS.fullmatch(value):
        msg = f"not RFC 3339 UTC with milliseconds: {value!r}"
        raise ValueError(msg)
    return parse_ts(value)


def problem(event: object) -> str | None:
    """Return why ``event`` breaks the input contract, or None when it is valid."""
    if not isinstance(event, dict):
        return "not an object"
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        return "bad event_id"
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return "bad type"
    user_id, anonymous_id = event.get("user_id"), event.get("anonymous_id")
    if user_id is None and anonymous_id is None:
        return "no id"
    if user_id is not None and (not isinstance(user_id, str) or not 1 <= len(user_id) <= 256):
        return "bad user_id"
    if kind in ("login", "identify") and (user_id is None or anonymous_id is None):
        return "login without both ids"
    if "ts" not in event:
        return "missing ts"
    try:
        ts_ms(event["ts"])
    except (TypeError, ValueError):
        return "bad ts"
    props = event.get("properties", {})
    context = event.get("context", {})
    if context.get("channel") not in CHANNELS:
        return "bad channel"
    if kind in ("product_view", "add_to_cart", "remove_from_cart") and not str(props.get("product_id", "")).startswith(
        "sku-"
    ):
        return "no product_id"
    if kind == "purchase":
        if not props.get("order_id") or not isinstance(props.get("revenue"), float) or props["revenue"] < 0:
            return "bad purchase"
        items_total = sum(item["price"] * item["quantity"] for item in props["items"])
        if abs(items_total - props["revenue"]) > 0.005 or props.get("currency") != "EUR":
            return "revenue is not the sum of the items"
    if kind == "consent":
        consent = context.get("consent", {})
        if not isinstance(consent.get("personalization"), bool) or not isinstance(consent.get("marketing"), bool):
            return "bad consent"
    return None


def load_dataset(config: GeneratorConfig, out: Path, truth: Path) -> Dataset:
    """Generate ``config`` and parse what was written."""
    stats = generate(config, out, truth)
    raw = out.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b"", "the file ends with a newline"
    lines = lines[:-1]
    events: list[tuple[int, dict]] = []
    invalid: list[tuple[bytes, str]] = []
    for number, line in enumerate(lines):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            invalid.append((line, "not JSON"))
            continue
        reason = problem(event)
        if reason is None:
            events.append((number, event))
        else:
            invalid.append((line, reason))
    rows = [orjson.loads(row) for row in truth.read_bytes().splitlines()]
    return Dataset(config, stats, raw, lines, events, invalid, {row["user_id"]: row for row in rows})


def by_user(data: Dataset) -> dict[str, list[dict]]:
    """Return each user's distinct valid events, in ts order."""
    devices = {
        device: uid
        for uid, row in data.truth.items()
        for device in (row["anonymous_id"], row["second_device_id"])
        if device
    }
    seen: set[str] = set()
    users: dict[str, list[dict]] = defaultdict(list)
    for _, event in data.events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        users[event.get("user_id") or devices[event["anonymous_id"]]].append(event)
    for events in users.values():
        events.sort(key=lambda e: ts_ms(e["ts"]))
    return users
