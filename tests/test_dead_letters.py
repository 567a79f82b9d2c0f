"""Dead letters from a redactor and a bound, without the parser (journeyflow/dead_letters.py)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from journeyflow.dead_letters import MIN_DEAD_LETTER_BYTES, DeadLetters
from journeyflow.events import MAX_REASON_CHARS
from journeyflow.redact import Redactor

LETTERS = DeadLetters(Redactor(("traits.email",), lambda value: f"h({len(value)})"), 4096)


def test_a_small_message_is_kept_whole_and_names_its_user() -> None:
    raw = b'{"event_id": "e1", "user_id": "u7", "type": "nope"}'
    letter = LETTERS.letter(raw, "file:3", "unknown_type", "unknown type: nope")
    assert (letter.code, letter.reason, letter.raw, letter.source, letter.user) == (
        "unknown_type", "unknown type: nope", raw, "file:3", "u7"
    )
    assert not letter.redacted and letter.truncated_from is None and letter.raw_sha256 is None


def test_personal_values_are_replaced_by_their_hash_and_emails_masked() -> None:
    raw = b'{"anonymous_id": "a1", "traits": {"email": "jane@example.com"}, "note": "write to bob@example.org"}'
    letter = LETTERS.letter(raw, "s", "missing_field", "missing field: ts")
    doc = orjson.loads(letter.raw)
    assert doc["traits"]["email"] == "hash:h(16)" and doc["note"] == "write to [redacted-email]"
    assert letter.redacted and letter.user == "a1"
    assert b"jane@" not in letter.to_json() and b"bob@" not in letter.to_json()


def test_text_that_is_not_json_is_scrubbed_and_has_no_user() -> None:
    raw = b'{"user_id": "u1", "email": "jane@example.com", broken'
    letter = LETTERS.letter(raw, "s", "invalid_json", "invalid JSON")
    assert letter.user is None and letter.redacted
    assert b"jane@example.com" not in letter.raw


def test_a_long_reason_is_cut() -> None:
    letter = LETTERS.letter(b"{}", "s", "invalid_value", "x" * (MAX_REASON_CHARS + 10))
    assert letter.reason == "x" * MAX_REASON_CHARS + "..."


def test_a_message_over_the_bound_keeps_a_prefix_its_length_and_digest() -> None:
    raw = orjson.dumps({"user_id": "u1", "pad": "y" * 20_000})
    letter = LETTERS.letter(raw, "s", "invalid_value", "bad pad")
    assert len(letter.to_json()) <= 4096
    assert raw.startswith(letter.raw) and 0 < len(letter.raw) < len(raw)
    assert letter.truncated_from == len(raw) and letter.raw_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_too_large_message_is_read_only_as_far_as_its_dead_letter_needs() -> None:
    raw = b'{"traits": {"email": "jane@example.com"}, "pad": "' + b"z" * 1_000_000 + b'"}'
    letter = LETTERS.too_large(raw, "s", "event too large")
    assert letter.code == "too_large" and letter.user is None and letter.redacted
    assert len(letter.to_json()) <= 4096 and b"jane@example.com" not in letter.raw
    assert letter.truncated_from == len(raw) and letter.raw_sha256 == hashlib.sha256(raw).hexdigest()


def test_the_bound_has_a_floor() -> None:
    with pytest.raises(ValueError, match=f"max_dead_letter_bytes must be >= {MIN_DEAD_LETTER_BYTES}; got 100 instead"):
        DeadLetters(Redactor((), str), 100)
