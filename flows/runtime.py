"""Run a dataflow with bytewax and surface what stopped it as journeyflow's own exceptions.

bytewax wraps whatever a step raises in ``BytewaxRuntimeError`` chains (with a
Rust backtrace printed on the way), and a Ctrl-C or SIGTERM in the same way.
:func:`execute` turns a signal back into ``KeyboardInterrupt`` and an error a
step raised on purpose (a :class:`JourneyflowError`: Redis gone for good, a
snapshot that cannot be read) back into that error, so the command line can
end with one line, whether it is a replay or the live worker.
"""

from __future__ import annotations

import logging
from typing import Any

from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow

from journeyflow.errors import JourneyflowError

__all__ = ["execute"]

log = logging.getLogger("journeyflow.runtime")


def execute(flow: Dataflow, **options: Any) -> None:
    """Run ``flow`` with ``bytewax``'s ``cli_main(flow, **options)`` until it ends.

    Raises ``KeyboardInterrupt`` for a signal, the :class:`JourneyflowError`
    a step raised (after logging the whole chain), and anything else as is.
    """
    try:
        cli_main(flow, **options)
    except BaseException as ex:
        if _cause(ex, KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        failure = _cause(ex, JourneyflowError)
        if failure is None:
            raise
        log.error("dataflow failed", exc_info=ex)
        raise type(failure)(str(failure)) from None


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
