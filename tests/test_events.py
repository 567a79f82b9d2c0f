"""The input contract: every bad message becomes a dead letter with a precise reason."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from journeyflow.event_parser import EventParser
from journeyflow.events import DeadLetter, Event

PARSER = EventParser(max_event_bytes=1024, personal_fields=("traits.email", "traits.phone"), salt="s")
GOOD = {"event_id": "e1", "type": "page_view", "user_id": "u1", "ts": "2026-11-22T10:31:00Z"}


def parse(doc: object) -> Event | DeadLetter:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return PARSER.parse(raw, "events.jsonl:7")


def with_(**changes: object) -> dict[str, object]:
    doc = {**GOOD, **changes}
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (b"", "empty", "empty message"),
        (b"   ", "empty", "empty message"),
        (b"[1, 2]", "not_an_object", "event must be a JSON object; got array instead"),
        (b'"text"', "not_an_object", "event must be a JSON object; got string instead"),
        (b'{"event_id": "e1", "type": "page_view"', "invalid_json", "invalid JSON at char 38"),
        (b"\xff\xfe{}", "invalid_utf8", "invalid UTF-8 at byte 0"),
        (orjson.dumps(with_(ts=...)), "missing_field", "missing field: ts"),
        (orjson.dumps(with_(event_id=...)), "missing_field", "missing field: event_id"),
        (orjson.dumps(with_(type=...)), "missing_field", "missing field: type"),
        (orjson.dumps(with_(user_id=...)), "missing_field", "missing field: user_id (or anonymous_id)"),
        (orjson.dumps(with_(type="teleport")), "unknown_type", "unknown type: teleport"),
        (orjson.dumps(with_(event_id=5)), "wrong_type", "event_id must be a string; got number instead"),
        (orjson.dumps(with_(user_id=42)), "wrong_type", "user_id must be a string; got number instead"),
        (orjson.dumps(with_(event_id="")), "invalid_value", "event_id must be 1..128 characters; got 0"),
        (orjson.dumps(with_(event_id="x" * 129)), "invalid_value", "event_id must be 1..128 characters; got 129"),
        (orjson.dumps(with_(ts="yesterday")), "invalid_ts", "unparsable ts: 'yesterday'"),
        # It read "unparsable ts", though the time parses: say what is missing and what is expected.
        (
            orjson.dumps(with_(ts="2026-11-22T10:31:00")),
            "invalid_ts",
            "ts has no UTC offset: '2026-11-22T10:31:00'; it must be an RFC 3339 time with one "
            "(Z or +HH:MM, e.g. '2026-11-22T10:31:00Z') or integer epoch milliseconds",
        ),
        (orjson.dumps(with_(ts="2026-11-22T10:31:00.250")), "invalid_ts", "ts has no UTC offset: '2026-11-22T10:31:00.250';"),
        (orjson.dumps(with_(ts=1.5e12)), "wrong_type", "ts must be an RFC 3339 string or integer epoch milliseconds"),
        (orjson.dumps(with_(ts=True)), "wrong_type", "ts must be"),
        # It read "unparsable ts", though the time parses: say the range.
        (
            orjson.dumps(with_(ts=-5)),
            "invalid_ts",
            "ts out of range: -5; it must be from 1970-01-01T00:00:00Z to before 2100-01-01T00:00:00Z",
        ),
        (orjson.dumps(with_(ts="1969-12-31T23:59:59Z")), "invalid_ts", "ts out of range: '1969-12-31T23:59:59Z'; it must"),
        (orjson.dumps(with_(ts=4_102_444_800_000)), "invalid_ts", "ts out of range: 4102444800000; it must"),
        (orjson.dumps(with_(properties=[1])), "wrong_type", "properties must be an object; got array instead"),
        (
            orjson.dumps(with_(type="purchase", properties={"order_id": "o1", "revenue": -3})),
            "invalid_value",
            "properties.revenue must be >= 0; got -3",
        ),
        (
            orjson.dumps(with_(type="purchase", properties={"order_id": "o1"})),
            "missing_field",
            "missing field: properties.revenue",
        ),
        (
            orjson.dumps(with_(type="purchase", properties={"revenue": 3})),
            "missing_field",
            "missing field: properties.order_id",
        ),
        (
            orjson.dumps(with_(type="purchase", properties={"order_id": "o", "revenue": 3, "items": [{"price": 1}]})),
            "missing_field",
            "missing field: properties.items[0].product_id",
        ),
        (orjson.dumps(with_(type="product_view")), "missing_field", "missing field: properties.product_id"),
        (
            orjson.dumps(with_(type="add_to_cart", properties={"product_id": "p", "quantity": 0})),
            "invalid_value",
            "properties.quantity must be >= 1; got 0",
        ),
        (
            orjson.dumps(with_(type="product_view", properties={"product_id": [7]})),
            "wrong_type",
            "properties.product_id must be a string or an integer; got array instead",
        ),
        (
            orjson.dumps(with_(type="product_view", properties={"product_id": "p", "price": "9.99"})),
            "wrong_type",
            "properties.price must be a number; got string instead",
        ),
        (orjson.dumps(with_(type="identify")), "missing_field", "missing field: anonymous_id (identify links both ids)"),
        (orjson.dumps(with_(type="consent")), "missing_field", "missing field: context.consent"),
        (
            orjson.dumps(with_(type="consent", context={"consent": {"personalization": "no"}})),
            "wrong_type",
            "context.consent.personalization must be a boolean; got string instead",
        ),
        (b"x" * 2000, "too_large", "event too large: 2000 bytes (max 1024)"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_its_reason(raw: bytes, code: str, reason: str) -> None:
    result = parse(raw)
    assert isinstance(result, DeadLetter)
    assert result.code == code
    assert result.reason.startswith(reason)
    assert result.source == "events.jsonl:7"
    record = orjson.loads(result.to_json())
    assert record["kind"] == "dead_letter"
    assert record["reason"] == result.reason
    assert record["source"] == "events.jsonl:7"


def test_dead_letter_keeps_the_original_text_or_base64() -> None:
    text = parse(b'{"oops": ')
    assert orjson.loads(text.to_json())["raw"] == '{"oops": '  # type: ignore[union-attr]
    binary = parse(b"\xff\xfe{}")
    record = orjson.loads(binary.to_json())  # type: ignore[union-attr]
    assert record["encoding"] == "base64"
    assert base64.b64decode(record["raw"]) == b"\xff\xfe{}"


def test_a_ten_megabyte_line_is_a_dead_letter_not_a_crash() -> None:
    parser = EventParser(max_event_bytes=1 << 20, personal_fields=(), salt="s")
    result = parser.parse(b'{"a": "' + b"x" * (10 << 20) + b'"}', "f:1")
    assert isinstance(result, DeadLetter) and result.code == "too_large"
    line = b'{"a": "' + b"x" * (10 << 20) + b'"}'
    # Bounded below the producer's limit: a prefix, the length and the digest.
    assert 200_000 < len(result.to_json()) <= 262144
    assert line.startswith(result.raw) and result.truncated_from == len(line)
    assert result.raw_sha256 == hashlib.sha256(line).hexdigest()


def test_valid_events_of_every_shape_parse() -> None:
    assert isinstance(parse(GOOD), Event)
    epoch = parse(with_(ts=1795343460000))
    assert isinstance(epoch, Event) and epoch.ts_ms == 1795343460000
    offset = parse(with_(ts="2026-11-22T11:31:00+01:00"))
    assert isinstance(offset, Event) and offset.ts_ms == 1795343460000
    anonymous = parse(with_(user_id=..., anonymous_id="a-1"))
    assert isinstance(anonymous, Event) and anonymous.user == "a-1"
    purchase = parse(
        with_(type="purchase", properties={"order_id": 7, "revenue": 30, "items": [{"product_id": 12, "price": 10, "quantity": 3}]})
    )
    assert isinstance(purchase, Event)
    assert purchase.order_id == "7" and purchase.items[0].product_id == "12" and purchase.items[0].quantity == 3
    consent = parse(with_(type="consent", context={"consent": {"personalization": False, "marketing": True}}))
    assert isinstance(consent, Event)
    assert consent.consent_personalization is False and consent.consent_marketing is True


def test_personal_data_is_hashed_in_events_and_redacted_in_dead_letters() -> None:
    event = parse(with_(type="identify", anonymous_id="a1", traits={"email": "ann@example.com", "phone": "+49 30 1234"}))
    assert isinstance(event, Event)
    assert "ann@example.com" not in repr(event.personal)
    assert dict(event.personal)["traits.email"] == PARSER.hash_personal("ann@example.com")
    dead = parse(with_(ts=..., traits={"email": "ann@example.com", "phone": "+49 30 1234"}))
    text = dead.to_json()  # type: ignore[union-attr]
    assert b"ann@example.com" not in text and b"+49 30 1234" not in text
    assert orjson.loads(text)["redacted"] is True
    broken = parse(b'{"traits": {"email": "ann@example.com", "phone": "+49 30 1234"')
    assert b"ann@example.com" not in broken.to_json() and b"1234" not in broken.to_json()  # type: ignore[union-attr]


def test_message_key_must_match_the_events_user() -> None:
    result = PARSER.parse(orjson.dumps(GOOD), "events/0@5", user_hint="someone-else")
    assert isinstance(result, DeadLetter) and result.code == "key_mismatch"


def test_a_login_may_be_keyed_by_its_device() -> None:
    login = {**GOOD, "type": "login", "user_id": "u42", "anonymous_id": "a-9f3"}
    result = PARSER.parse(orjson.dumps(login), "events/0@6", user_hint="a-9f3")
    assert isinstance(result, Event) and result.user == "u42"
