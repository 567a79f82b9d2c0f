"""A TCP proxy on loopback that a test can cut and restore: a network outage on demand.

Tansu keeps its data only in memory, so a broker cannot be restarted to
simulate an outage without losing everything; a proxy in front of it (the
broker advertising the proxy's port) can. The same works for Redis.

While cut, the proxy refuses new connections (the listening socket is
closed) and resets every open one, as a failed link or a dead host's
firewall would. Restored, it listens again on the same port.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

__all__ = ["TcpProxy"]


@dataclass
class TcpProxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target_port``."""

    target_port: int
    port: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)
    _links: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cut: bool = False

    def start(self) -> TcpProxy:
        """Listen (on a free port the first time, the same port after a cut)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            self._cut = True
            listener, self._listener = self._listener, None
            links, self._links = self._links, set()
        if listener is not None:
            listener.close()
        for link in links:
            _reset(link)

    def restore(self) -> None:
        """Accept and forward connections again."""
        with self._lock:
            self._cut = False
        self.start()

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self._links.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._links.discard(src)
                self._links.discard(dst)
            _reset(src)
            _reset(dst)


def _reset(sock: socket.socket) -> None:
    try:
        # Linger 0: close with a reset, not a graceful FIN, as a broken link does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
