"""Inputs of the fault tests (``test_faults_*.py``, issue 10): poison messages, personal data
that must never reach an output in clear, valid events to send after them, rules without holdouts."""

from __future__ import annotations

from typing import Any

import orjson

from tests.helpers import at, event

EMAIL = "jane.doe@example.com"
PHONE = "+4915123456789"
# What must not appear anywhere in an output: the address, its local part,
# the phone's digits (with or without separators).
SECRETS = ("jane.doe", "example.com", "15123456789", "151 2345 6789")


def assert_no_personal_data(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in clear in {where}"


def poison_inputs() -> list[bytes]:
    """Inputs that used to stop or stall the worker, and some that might."""
    ts = at(0)
    big = orjson.dumps(
        {"event_id": "e-big", "type": "page_view", "user_id": "u-fuzz", "ts": ts,
         "traits": {"email": EMAIL, "phone": PHONE}, "properties": {"pad": "x" * (2 << 20)}}
    )
    nested_object = b'{"a":' * 5000 + b"1" + b"}" * 5000
    return [
        big,  # 2 MB: too_large, its dead letter used to exceed the producer's 1 MiB
        b'"' * 600_000,  # escaped, the raw doubles: 1.2 MB of dead letter
        b"[" * 100_000 + b"]" * 100_000,  # nesting beyond any parser's limit
        nested_object,
        bytes(range(11, 256)) * 600,  # binary: base64 in the dead letter
        b"\xff" + b"a" * 150_000,  # the pattern that was quadratic (36 s for 150 KB)
        b"\xff" + b"a@" * 75_000,
        b"\xff" + b"x.y" * 50_000 + b"@" + b"z" * 50_000,
        b"\xff" + b"1" * 150_000,
        b"\xff" + f'{{"traits": {{"email": "{EMAIL}", "phone": "+49 151 2345 6789"'.encode() + b"\xfe" * 5000,
    ]


def valid_after(user: str = "u-after") -> list[dict[str, Any]]:
    return [event("product_view", user, at(i), product_id="sku-f", category="shoes") for i in range(4)]


NO_HOLDOUT_RULES = """
[triggers.product_interest]
on = "event"
event_types = ["product_view"]
when = "product_views > 3"
cooldown_s = 86400
cooldown_key = "event.product_id"
payload = { product_id = "event.product_id" }
"""
