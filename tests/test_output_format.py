"""Output formatting done the cheap way must give the bytes of the plain way: times, profile rows."""

from __future__ import annotations

import random
from datetime import date, datetime, timezone

import orjson
import pytest

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


def test_format_ts_dates_equal_the_calendar_s_from_year_1_to_9999() -> None:
    """The integer date (journeyflow.time_text) against date.fromordinal's, on every kind of day and beyond the
    years isoformat() writes with four digits (the datetime path, the same text or the same error)."""
    epoch = date(1970, 1, 1).toordinal()
    draw = random.Random(10)
    days = list(range(-800, 800)) + [date(y, m, d).toordinal() - epoch for y in (1, 4, 100, 999, 1000, 1600, 1900,
                                                                               2000, 2100, 2400, 9999)
                                     for m, d in ((1, 1), (2, 28), (3, 1), (12, 31))]  # fmt: skip
    days += [draw.randrange(1 - epoch, date(9999, 12, 31).toordinal() - epoch + 1) for _ in range(20_000)]
    for day in days:
        ts_ms = day * 86_400_000 + draw.randrange(86_400_000)
        assert format_ts(ts_ms) == _reference(ts_ms), ts_ms
    for ts_ms in ((-epoch) * 86_400_000, (date(9999, 12, 31).toordinal() - epoch + 1) * 86_400_000):
        with pytest.raises(ValueError):
            format_ts(ts_ms)
