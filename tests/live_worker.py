"""Run ``journeyflow run`` as a real subprocess against a real Kafka-protocol broker (Tansu)
and a real redis-server (``tests/conftest.py``): the worker of ``tests/flows/test_live_*.py``,
``test_recovery_*.py``, ``test_faults*.py`` and
``tests/security/test_secrets.py`` (the ``live`` fixture is in ``tests/flows/conftest.py``;
the topics are made and read by ``tests/live_topics.py``, what the worker wrote is checked
by ``tests/live_checks.py``).

Each test makes its own topics (unique names, passed to the worker through
``JOURNEYFLOW_KAFKA_*_TOPIC``) and its own Redis database, starts the worker
with ``python -m journeyflow.cli run`` and reads what it wrote. Nothing waits
for a fixed time: reads poll until the expected records arrived or a deadline
passed (then the assertion fails, with the worker's stderr).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.live_topics import Topics


REPO = Path(__file__).resolve().parents[2]


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, worker: Worker | None = None) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
            code = worker.proc.returncode
            pytest.fail(f"worker exited with code {code} while waiting for {what}:\n{worker.stderr()}")
        if time.monotonic() > deadline:
            detail = f"\nworker stderr:\n{worker.stderr()}" if worker is not None else ""
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        time.sleep(0.05)


# --- the worker -------------------------------------------------------------------


def worker_env(
    bootstrap: str,
    redis_url: str,
    topics: Topics,
    *,
    recovery_dir: Path | None = None,
    metrics_port: int | None = None,
    **settings: Any,
) -> dict[str, str]:
    """Return the environment of a worker: the process's, without its own
    ``JOURNEYFLOW_*`` variables, plus the broker, Redis, topics and ``settings``
    (``sessions_gap_s=2`` becomes ``JOURNEYFLOW_SESSIONS_GAP_S=2``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
    env.update(topics.env())
    env["JOURNEYFLOW_KAFKA_BROKERS"] = bootstrap
    env["JOURNEYFLOW_REDIS_URL"] = redis_url
    env["JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S"] = "5"
    # `journeyflow run` refuses the shipped salt (issue 15).
    env["JOURNEYFLOW_PRIVACY_SALT"] = "test-salt-not-the-shipped-one"
    if recovery_dir is not None:
        env["JOURNEYFLOW_RECOVERY_DIR"] = str(recovery_dir)
        env["JOURNEYFLOW_RECOVERY_SNAPSHOT_S"] = "1"
        env["JOURNEYFLOW_RECOVERY_BACKUP_S"] = "0"
    else:
        env["JOURNEYFLOW_RUN_EPOCH_S"] = "1"
    if metrics_port is not None:
        env["JOURNEYFLOW_RUN_METRICS_PORT"] = str(metrics_port)
    for name, value in settings.items():
        env[f"JOURNEYFLOW_{name.upper()}"] = str(value)
    return env


class Worker:
    """``journeyflow run`` in a subprocess; its output goes to files (a pipe
    nobody reads would block it once full)."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker", args: Sequence[str] = ()) -> None:
        self.env = env
        self.args = list(args)
        self.log_dir = log_dir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def _err_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.runs}.stderr"

    def start(self) -> Worker:
        self.runs += 1
        out_path = self.log_dir / f"{self.name}-{self.runs}.stdout"
        with self._err_path.open("wb") as err, out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeyflow.cli", "run", *self.args],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        return self

    def stderr(self) -> str:
        try:
            return self._err_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker still running after {timeout_s:g} s:\n{self.stderr()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> tuple[int, float]:
        """Send ``sig``; return the exit code and the seconds it took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.wait(timeout_s)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, like a crashed machine."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()
