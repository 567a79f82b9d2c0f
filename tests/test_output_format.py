"""Output formatting done the cheap way must give the bytes of the plain way: times, profile rows."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import orjson

from journeyflow.events import MAX_TS_MS, format_ts, parse_ts
from journeyflow.records import ProfileRow


def _reference(ts_ms: int) -> str:
    """What format_ts wrote before: isoformat of the UTC datetime, the milliseconds only when not zero."""
    seconds, ms = divmod(ts_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).isoformat()[:19]
    return f"{stamp}.{ms:03d}Z" if ms else f"{stamp}Z"


def test_format_ts_equals_the_datetime_text_over_the_range_events_may_carry() -> None:
    draw = random.Random(8)
    edges = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 4_107_542_400_000 - 1]
    times = edges + [draw.randrange(0, MAX_TS_MS) for _ in range(20_000)]
    times += [draw.randrange(0, MAX_TS_MS // 1000) * 1000 for _ in range(5_000)]  # whole seconds
    for ts_ms in times:
        assert format_ts(ts_ms) == _reference(ts_ms), ts_ms


def test_format_ts_reads_back_as_the_same_time() -> None:
    draw = random.Random(9)
    for ts_ms in [draw.randrange(0, MAX_TS_MS) for _ in range(2_000)]:
        assert parse_ts(format_ts(ts_ms)) == ts_ms


def test_profile_row_bytes_equal_its_dict_encoded() -> None:
    """ProfileRow.to_json splices the fields' own encoding: the bytes of to_dict() encoded, in every shape."""
    fields = {"events_total": 3, "engagement": 0.25, "top_category": "bücher \"x\"", "last_purchase": None,
              "cart": {"products": ["p1"], "value": 9.5}, "category_affinity": {}, "cluster": 2}  # fmt: skip
    rows = [
        ProfileRow("u-1", 1_795_343_460_250, fields, ("cluster:2", "new_visitor"), final=True),
        ProfileRow("u-1", 1_795_343_460_000, fields),
        ProfileRow("u-1", 0, {}),
        ProfileRow("u-1", 0, {}, ()),
        ProfileRow("u-1", 1, {"churn_risk": 0.5}),
        # A field named as one of the row's own keys keeps the dict's order and value.
        ProfileRow("u-1", 1, {"a": 1, "user_id": "other", "updated_at": "x", "segments": 2}, ("s",)),
    ]
    for row in rows:
        assert row.to_json() == orjson.dumps(row.to_dict()), row
