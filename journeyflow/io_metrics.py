"""Where the live worker's time goes outside its steps: Prometheus metrics of its I/O and GC.

The live worker runs every step and every sink in one thread per worker, so a
sink waiting for an acknowledgement, or a garbage collection, delays every
event behind it. These series say how long and how often (``scripts/bench_live.py``
reads them after each run and prints the shares; Prometheus can graph them):

- ``journeyflow_sink_write_seconds{sink}``: one batch handed to a sink until it
  returned (Kafka: sent and acknowledged; Redis: one pipeline's round trip);
  ``_count`` is the batches, ``_sum`` the seconds.
- ``journeyflow_sink_records_total{sink}``: records in those batches.
- ``journeyflow_source_batch_records``: records per non-empty poll of an input
  partition (``_count`` polls that returned records).
- ``journeyflow_input_delay_seconds``: per non-empty poll, how long ago its
  oldest record was written (its Kafka timestamp; across machines this
  includes their clock difference): the wait before the worker saw it.
- ``journeyflow_gc_pause_seconds{generation}``: each collection the cyclic
  garbage collector ran while the flow was running.

Labels are step ids and GC generations: small fixed sets.

>>> with sink_timer("doctest"):
...     pass
>>> SINK_WRITE_SECONDS.labels(sink="doctest")._sum.get() >= 0
True
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Histogram

__all__ = [
    "GC_PAUSE_SECONDS",
    "INPUT_DELAY_SECONDS",
    "SINK_RECORDS",
    "SINK_WRITE_SECONDS",
    "SOURCE_BATCH_RECORDS",
    "GcPauses",
    "sink_timer",
]

_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

SINK_WRITE_SECONDS = Histogram(
    "journeyflow_sink_write_seconds",
    "Seconds one output batch took in its sink (Kafka: sent and acknowledged; Redis: one pipeline).",
    ["sink"],
    buckets=_SECONDS,
)

SINK_RECORDS = Counter("journeyflow_sink_records", "Records handed to a sink, by sink.", ["sink"])

SOURCE_BATCH_RECORDS = Histogram(
    "journeyflow_source_batch_records",
    "Records per non-empty poll of one input partition.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)

INPUT_DELAY_SECONDS = Histogram(
    "journeyflow_input_delay_seconds",
    "Per non-empty poll of an input partition, seconds since its oldest record's Kafka timestamp.",
    buckets=_SECONDS,
)

GC_PAUSE_SECONDS = Histogram(
    "journeyflow_gc_pause_seconds",
    "Seconds of each cyclic garbage collection while the flow runs, by generation.",
    ["generation"],
    buckets=_SECONDS,
)


@contextmanager
def sink_timer(sink: str, records: int = 0) -> Iterator[None]:
    """Time the block as one batch of ``sink`` holding ``records`` records."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SINK_WRITE_SECONDS.labels(sink=sink).observe(time.perf_counter() - started)
        if records:
            SINK_RECORDS.labels(sink=sink).inc(records)


class GcPauses:
    """Observe every garbage collection's pause between :meth:`install` and :meth:`remove`.

    >>> pauses = GcPauses()
    >>> pauses.install()
    >>> _ = gc.collect()
    >>> pauses.remove()
    >>> GC_PAUSE_SECONDS.labels(generation="2")._sum.get() > 0
    True
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._series = [GC_PAUSE_SECONDS.labels(generation=str(g)) for g in range(3)]

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._series[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
