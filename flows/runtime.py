"""Run a dataflow with bytewax and surface what stopped it as journeyflow's own exceptions.

bytewax wraps whatever a step raises in ``BytewaxRuntimeError`` chains (with a
Rust backtrace printed on the way), and a Ctrl-C or SIGTERM in the same way.
:func:`execute` turns a signal back into ``KeyboardInterrupt`` and an error a
step raised on purpose (a :class:`JourneyflowError`: Redis gone for good, a
snapshot that cannot be read) back into that error, so the command line can
end with one line, whether it is a replay or the live worker.

A requested stop is not an error, yet bytewax stops its workers by panicking,
and the Rust panic hook prints ``thread '<unnamed>' panicked at
src/run.rs:133:25`` and, with ``RUST_BACKTRACE`` set, some 55 lines of
backtrace on stderr. So from the moment SIGTERM or SIGINT arrives, stderr
(the file descriptor, which the Rust side writes to) goes to a temporary
file; once bytewax has returned, journeyflow's own log lines (JSON objects)
are written back and the shutdown noise is dropped.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import tempfile
import threading
from typing import Any

from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow

from journeyflow.errors import JourneyflowError
from journeyflow.io_metrics import GcPauses

__all__ = ["execute", "GC_THRESHOLDS"]

#: Generation-0 threshold raised from 700 to 50,000 allocations (the older
#: generations' from 10 to 20 and 10 to 100): every user's state is thousands of
#: long-lived small objects, so at the default thresholds the collector re-walks
#: them many times a second and finds nothing to free. Measured on a replay of
#: 226k generated events (4,000 users, 30 days): see README, "Performance".
GC_THRESHOLDS = (50_000, 20, 100)

log = logging.getLogger("journeyflow.runtime")


def execute(flow: Dataflow, **options: Any) -> None:
    """Run ``flow`` with ``bytewax``'s ``cli_main(flow, **options)`` until it ends.

    SIGTERM and SIGINT stop it (see the module docstring). Raises
    ``KeyboardInterrupt`` for a signal, the :class:`JourneyflowError` a step
    raised (after logging the whole chain), and anything else as is.
    """
    quiet = _QuietStop()
    previous = quiet.install()
    thresholds = gc.get_threshold()
    # What start-up built (modules, rules, models, settings) lives as long as
    # the run: frozen, the collector no longer walks it on every full collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    pauses = GcPauses()
    pauses.install()
    try:
        cli_main(flow, **options)
    except BaseException as ex:
        if quiet.stopping or _cause(ex, KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        failure = _cause(ex, JourneyflowError)
        if failure is None:
            raise
        log.error("dataflow failed", exc_info=ex)
        raise type(failure)(str(failure)) from None
    finally:
        pauses.remove()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        quiet.restore(previous)


class _QuietStop:
    """Turn SIGTERM and SIGINT into ``KeyboardInterrupt``, with bytewax's shutdown noise held back."""

    def __init__(self) -> None:
        self.stopping = False
        self._saved_fd: int | None = None
        self._capture: Any = None

    def install(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal handlers can only be set from the main thread
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            try:
                sys.stderr.flush()
                self._capture = tempfile.TemporaryFile()
                self._saved_fd = os.dup(2)
                os.dup2(self._capture.fileno(), 2)
            except OSError:
                self._saved_fd = None  # stderr as it is: noisy, not broken
        raise KeyboardInterrupt

    def restore(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if self._saved_fd is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._saved_fd = None
        self._capture.seek(0)
        text = self._capture.read().decode("utf-8", "replace")
        self._capture.close()
        kept = [line for line in text.splitlines() if _is_log_line(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()


def _is_log_line(line: str) -> bool:
    """Return whether ``line`` is one of journeyflow's JSON log lines (see ``journeyflow.logs``).

    >>> _is_log_line('{"ts": "2026-11-22T10:31:00Z", "level": "warning", "msg": "x"}')
    True
    >>> _is_log_line("thread '<unnamed>' panicked at src/run.rs:133:25:")
    False
    """
    return line.startswith("{") and '"level"' in line and line.rstrip().endswith("}")


def _cause(ex: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Return the first exception of ``kind`` in ``ex`` and its causes, or ``None``.

    >>> try:
    ...     try:
    ...         raise KeyError("inner")
    ...     except KeyError as inner:
    ...         raise RuntimeError("outer") from inner
    ... except RuntimeError as outer:
    ...     found = _cause(outer, KeyError)
    >>> type(found).__name__
    'KeyError'
    """
    seen: BaseException | None = ex
    for _ in range(20):  # cause chains are short; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
