"""``make live`` (``scripts/live_local.py``): the local stack starts, works, and Ctrl-C stops all of it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.helpers import at, event, write_events

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def _open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_live_local_runs_the_stack_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    views = [event("product_view", "u-live", at(i), product_id="sku-4", category="shoes") for i in range(5)]
    events = write_events(tmp_path / "events.jsonl", views)
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "scripts/live_local.py", str(events), "--workdir", str(tmp_path / "w")],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
            # SIGINT ignored, as a background job of a script starts it: Ctrl-C must still stop it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 180
        while b"Ctrl-C stops" not in out.read_bytes():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        text = out.read_text()
        broker = int(re.search(r"broker +127\.0\.0\.1:(\d+)", text).group(1))
        redis_port = int(re.search(r"redis +redis://127\.0\.0\.1:(\d+)", text).group(1))
        assert "scripts/tail_triggers.py --from-beginning" in text and "HGETALL jf:profile:<user_id>" in text
        assert "sent 5 events to 'events'" in text
        client = redis.Redis(port=redis_port, decode_responses=True)
        deadline = time.monotonic() + 60
        while not client.exists("jf:profile:u-live"):
            assert time.monotonic() < deadline, (tmp_path / "w" / "worker.log").read_text()
            time.sleep(0.2)
        client.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _open(broker) and not _open(redis_port)
    assert "live_local.py: stopped" in out.read_text()
