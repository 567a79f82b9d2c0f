"""The Kafka scripts (``scripts/produce_events.py``, ``scripts/tail_triggers.py``) against a
real broker (Tansu, started by ``tests/conftest.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from journeyflow.records import Trigger

from tests.conftest import KafkaBroker, free_port
from tests.flows.kafka_io import consume_all, produce

pytestmark = pytest.mark.kafka


REPO = Path(__file__).resolve().parents[2]


# --- scripts ----------------------------------------------------------------------


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _script(name: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_produce_events_sends_every_line_keyed_by_user(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"produce-{free_port()}"
    lines = [
        orjson.dumps({"event_id": "e1", "type": "page_view", "user_id": "u1", "ts": "2026-11-22T10:00:00Z"}),
        orjson.dumps({"event_id": "e2", "type": "page_view", "anonymous_id": "a9", "ts": "2026-11-22T10:00:00.100Z"}),
        b"{not json",
        orjson.dumps({"event_id": "e3", "type": "page_view", "user_id": "u1", "ts": "2026-11-22T10:00:00.200Z"}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = _script(
        "produce_events.py", str(events), "--brokers", kafka_broker.bootstrap, "--topic", topic,
        "--create-topic", "--partitions", "3", "--speedup", "1",
    )
    started = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.startswith("sent 4 events"), stdout
    # --speedup 1 follows the events' own clock: 0.2 s from first to last.
    assert time.monotonic() - started >= 0.2

    got = consume_all(kafka_broker.bootstrap, topic, 4)
    assert sorted((m.key or b"", m.value) for m in got) == sorted(
        [(b"u1", lines[0]), (b"a9", lines[1]), (b"", lines[2]), (b"u1", lines[3])]
    )


def test_scripts_exit_2_with_one_line_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1"}\n')
    address = f"127.0.0.1:{free_port()}"
    for proc in (
        _script("produce_events.py", str(events), "--brokers", address),
        _script("tail_triggers.py", "--brokers", address),
    ):
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert stderr.strip().count("\n") == 0, stderr
        assert f"kafka broker(s) {address} unreachable after 1 s" in stderr


def test_tail_triggers_prints_one_line_per_trigger(
    kafka_broker: KafkaBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(1)
    trigger = Trigger("t1", "cart_abandonment", "u42", 1_795_343_460_000, "e-990", "treatment",
                      {"products": ["sku-7"], "cart_value": 59.0})
    produce(kafka_broker.bootstrap, topic, [(b"u42", trigger.to_json()), (None, b"not json")])
    # Started with SIGINT ignored, as a background job of a script starts it: Ctrl-C must still stop it.
    proc = _script("tail_triggers.py", "--brokers", kafka_broker.bootstrap, "--topic", topic,
                   "--from-beginning", preexec_fn=_ignore_sigint)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert first.split() == [
        "2026-11-22T10:31:00Z", "cart_abandonment", "treatment", "u42",
        '{"products":["sku-7"],"cart_value":59.0}',
    ]
    assert "not json" in second
    assert proc.returncode == 0, stderr
