"""No input can stop the worker (issue 10): dead letters stay bounded and keep no personal data
in clear, for every dead-letter code; a fuzz through the replay."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from journeyflow.event_parser import EventParser
from journeyflow.events import DeadLetter
from tests.live_worker import REPO
from tests.helpers import at, event, run_replay, settings
from tests.flows.fault_inputs import EMAIL, PHONE, assert_no_personal_data, poison_inputs, valid_after

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


# --- 1. no input can stop the worker: bounded dead letters, a fuzz --------------------


def test_a_dead_letter_never_exceeds_its_bound_and_keeps_prefix_length_and_digest() -> None:
    parser = EventParser(max_event_bytes=1 << 20, personal_fields=("traits.email", "traits.phone"),
                         salt="s", max_dead_letter_bytes=262144)
    for raw in poison_inputs():
        letter = parser.parse(raw, "events/0@1", "u-fuzz")
        assert isinstance(letter, DeadLetter)
        encoded = letter.to_json()
        assert len(encoded) <= 262144, (letter.code, len(encoded))
        doc = orjson.loads(encoded)
        assert_no_personal_data(encoded.decode(), letter.code)
        if doc.get("truncated_from") is not None:
            assert doc["truncated_from"] == len(raw)
            assert doc["raw_sha256"] == hashlib.sha256(raw).hexdigest()
            kept = base64.b64decode(doc["raw"]) if doc.get("encoding") == "base64" else doc["raw"].encode()
            assert len(kept) > 100_000  # a useful prefix, not an empty one
    # The 600 KB of quotes is below max_event_bytes but its JSON is 1.2 MB: cut, not refused.
    quotes = parser.parse(b'"' * 600_000, "events/0@2")
    assert quotes.code == "invalid_json" and quotes.truncated_from == 600_000  # type: ignore[union-attr]


def test_scrubbing_text_that_is_not_json_is_linear() -> None:
    # 800 KB of the input that made the old pattern quadratic (150 KB took
    # 36.5 s; 800 KB had not finished after 20 s). Run in a subprocess with a
    # generous bound: a quadratic scan would take well over an hour here.
    code = (
        "from journeyflow.event_parser import EventParser\n"
        "p = EventParser(max_event_bytes=1 << 21, personal_fields=('traits.email',), salt='s',"
        " max_dead_letter_bytes=1 << 20)\n"
        "for raw in (b'\\xff' + b'a' * 800_000, b'\\xff' + b'a@' * 400_000, b'\\xff' + b'1 ' * 400_000,"
        " b'\\xff' + b'\"email\": \"' * 80_000):\n"
        "    print(p.parse(raw, 'f:1').code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["invalid_utf8"] * 4


def _inputs_for_every_code() -> tuple[list[bytes], set[str]]:
    traits = {"email": EMAIL, "phone": PHONE}
    good = event("page_view", "u-p", at(30), traits=traits)

    def line(**changes: Any) -> bytes:
        doc = {**good, "event_id": f"e-{len(changes)}-{sorted(changes)}"}
        for key, value in changes.items():
            if value is ...:
                doc.pop(key)
            else:
                doc[key] = value
        return orjson.dumps(doc)

    lines = [
        orjson.dumps(good),
        b"",  # empty
        orjson.dumps(good)[:-20],  # invalid_json, cut inside the traits
        orjson.dumps(good).replace(b"page_view", b"page_\xffview"),  # invalid_utf8
        orjson.dumps([good]),  # not_an_object
        line(ts=...),  # missing_field
        line(event_id=12),  # wrong_type
        line(type="teleport"),  # unknown_type
        line(type="product_view", properties={"product_id": "p", "price": -1}),  # invalid_value
        line(ts="yesterday"),  # invalid_ts
        line(properties={"pad": "x" * 3000}),  # too_large (max_event_bytes = 2000 below)
        orjson.dumps({**good, "event_id": "e-late", "ts": at(0)}),  # late: 30 minutes behind
        b"plain text from " + EMAIL.encode() + b", call +49 151 2345 6789",  # invalid_json, not JSON at all
    ]
    codes = {"empty", "invalid_json", "invalid_utf8", "not_an_object", "missing_field", "wrong_type",
             "unknown_type", "invalid_value", "invalid_ts", "too_large", "late"}
    return lines, codes


def test_no_email_or_phone_in_clear_reaches_any_output_for_every_dead_letter_code(tmp_path: Path) -> None:
    lines, codes = _inputs_for_every_code()
    cfg = settings(input={"max_event_bytes": 2000}, lateness={"allowed_s": 60})
    replayed = run_replay(tmp_path, lines, cfg=cfg)
    dead = replayed.dead_letters
    assert {d["code"] for d in dead} == codes
    for path in sorted(replayed.out.iterdir()):
        assert_no_personal_data(path.read_bytes().decode("utf-8", "replace"), path.name)
    too_large = next(d for d in dead if d["code"] == "too_large")
    assert too_large["redacted"] is True and "hash:" not in too_large["raw"]
    # The only code a replay cannot produce: the Kafka key names another user.
    parser = EventParser(max_event_bytes=2000, personal_fields=("traits.email", "traits.phone"), salt="s")
    mismatch = parser.parse(lines[0], "events/0@9", "someone-else")
    assert isinstance(mismatch, DeadLetter) and mismatch.code == "key_mismatch"
    assert_no_personal_data(mismatch.to_json().decode(), "key_mismatch")


def test_fuzz_through_the_replay(tmp_path: Path) -> None:
    poison = poison_inputs()
    lines = [p for p in poison] + [orjson.dumps(e) for e in valid_after()]
    replayed = run_replay(tmp_path, lines)
    assert replayed.summary["accounted"]
    # Each poison line is one dead letter (the binary one has no newline in it).
    assert len(replayed.dead_letters) == len(poison)
    for path in sorted(replayed.out.iterdir()):
        assert_no_personal_data(path.read_bytes().decode("utf-8", "replace"), path.name)
    for line in (replayed.out / "dead_letters.jsonl").read_bytes().splitlines():
        assert len(line) <= 262144
    assert [t["rule"] for t in replayed.triggers] == ["product_interest"]
