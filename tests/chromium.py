"""Drive Debian's headless Chromium over the DevTools protocol, for page tests.

Chromium is started with ``--remote-debugging-pipe``: it reads DevTools
commands on fd 3 and writes replies and events on fd 4, each a JSON message
ended by a NUL byte. That needs no WebSocket client and no port, and every
console message, uncaught exception and network request reaches the test as
an event. Chromium runs with a fresh profile and without background
networking, so the page sees nothing but what it loads itself.
"""

from __future__ import annotations

import base64
import fcntl
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

__all__ = ["Browser", "chromium_binary"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)


def chromium_binary() -> str:
    """Return Chromium's path; fail the test with the install command when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make services` (apt-get install chromium)")
    return found


def _high_fd(fd: int) -> int:
    """Move ``fd`` above 10, so the child can put its pipes on 3 and 4 without clashes."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


@dataclass
class Browser:
    """One headless Chromium with one page; use as a context manager."""

    profile_dir: Path
    timeout_s: float = 60.0
    events: list[dict[str, Any]] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _to_browser: int = -1
    _replies: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    _next_id: int = 0
    _session: str | None = None

    def __enter__(self) -> Browser:
        commands_r, commands_w = (_high_fd(fd) for fd in os.pipe())
        replies_r, replies_w = (_high_fd(fd) for fd in os.pipe())

        def wire_pipes() -> None:  # runs in the child before exec
            os.dup2(commands_r, 3)
            os.dup2(replies_w, 4)

        self._proc = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=(self.profile_dir.parent / "chromium.log").open("wb"),
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,  # noqa: PLW1509 (single-threaded at this point in the test)
        )
        os.close(commands_r)
        os.close(replies_w)
        self._to_browser = commands_w
        threading.Thread(target=self._read, args=(replies_r,), daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        try:
            self.send("Browser.close", session=False)
        except (AssertionError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)

    def _read(self, fd: int) -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._replies.put(orjson.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile go to :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to_browser, orjson.dumps(message) + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._next(deadline, method)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method} failed: {reply['error']}"
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _next(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        try:
            return self._replies.get(timeout=max(left, 0.01))
        except queue.Empty:
            raise AssertionError(f"chromium did not answer {waiting_for} within {self.timeout_s:g} s") from None

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, f"{expression!r} threw: {result['exceptionDetails']}"
        return result["result"].get("value")

    def open(self, url: str, *, width: int = 1400, height: int = 900) -> None:
        """Load ``url`` in a ``width`` x ``height`` viewport and wait for its load event."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for(lambda: any(e["method"] == "Page.loadEventFired" for e in self.events), "the load event")

    def wait_for(self, done: Any, what: str) -> None:
        """Poll ``done()`` (events keep arriving) until it is true or the timeout passes."""
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"page: no {what} within {self.timeout_s:g} s")
            self.evaluate("0")  # a round trip collects pending events
            time.sleep(0.1)

    def errors(self) -> list[str]:
        """Return the page's console errors, uncaught exceptions and error log entries so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')} "
                             f"{params['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def requested_urls(self) -> list[str]:
        """Return every URL the page requested."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, *, full_page: bool = True, max_height: int = 20000) -> None:
        """Save a PNG of the page (the whole page, up to ``max_height`` pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height),
                              "scale": 1}
            params["captureBeyondViewport"] = True
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
