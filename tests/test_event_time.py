"""The common event time read directly gives what parse_ts gives, or leaves the text to it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from journeyflow.event_time import utc_ms
from journeyflow.events import parse_ts

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _reference(text: str) -> int:
    try:
        return parse_ts(text)
    except (TypeError, ValueError):
        return -1


def test_the_common_form_is_read_as_parse_ts_reads_it() -> None:
    rnd = random.Random(8)
    for _ in range(20_000):
        ms = rnd.randrange(0, 4_102_444_800_000)
        stamp = (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S")
        text = f"{stamp}.{ms % 1000:03d}Z" if rnd.random() < 0.7 else f"{stamp}Z"
        # Never left to parse_ts (the fast path is taken), and the same value.
        assert utc_ms(text) == _reference(text) != -1, text


def test_any_other_text_is_left_to_parse_ts() -> None:
    rnd = random.Random(9)
    alphabet = "0123456789-:TZ.+ x\u0663"
    for _ in range(20_000):
        chars = list(rnd.choice(["2024-02-29T23:59:59.999Z", "2099-12-31T23:59:59Z", "1970-01-01T00:00:00.000Z"]))
        for _ in range(rnd.randint(1, 2)):
            chars[rnd.randrange(len(chars))] = rnd.choice(alphabet)
        text = "".join(chars)
        assert utc_ms(text) in (-1, _reference(text)), text
    for text in ("2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                 "2026-04-31T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T10:31:00+01:00", "2026-11-22T10:31:00.2Z"):
        assert utc_ms(text) == -1, text
    assert utc_ms("2024-02-29T00:00:00Z") == _reference("2024-02-29T00:00:00Z") == 1_709_164_800_000
