"""Prometheus metrics of journeyflow, in ``prometheus_client``'s default registry.

bytewax serves the default registry at ``:3030/metrics`` when
``BYTEWAX_DATAFLOW_API_ENABLED=true``; otherwise call
:func:`start_metrics_server`. Every name starts with ``journeyflow_``;
counters are exposed with the ``_total`` suffix that ``prometheus_client``
adds (``journeyflow_events_read_total``).

Label values must come from small, fixed sets (a topic, a dead-letter code,
a rule name), never from user ids or event ids: each label value is a time
series held in memory for the life of the process.

>>> EVENTS_READ.labels(source="doctest").inc(2)
>>> EVENTS_READ.labels(source="doctest")._value.get()
2.0
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from journeyflow.errors import ConfigError

__all__ = [
    "EVENTS_READ",
    "DEAD_LETTERS",
    "DUPLICATES",
    "LATE_EVENTS",
    "SESSIONS_CLOSED",
    "SEGMENT_ENTRIES",
    "SEGMENT_EXITS",
    "TRIGGERS",
    "RULE_ERRORS",
    "rule_error_counts",
    "MODEL_SCORE",
    "MODEL_DRIFTS",
    "MODEL_AUC",
    "KAFKA_LAG",
    "KAFKA_ERRORS",
    "REDIS_WRITE_ERRORS",
    "CONVERSIONS",
    "ATTRIBUTIONS_EXPIRED",
    "CONVERSION_RATE",
    "UPLIFT",
    "READY",
    "SERVICE_DOWN",
    "UNDELIVERABLE",
    "set_running",
    "service_down",
    "service_up",
    "start_metrics_server",
]

EVENTS_READ = Counter(
    "journeyflow_events_read",
    "Messages read from an input, before parsing.",
    ["source"],
)
"""Label ``source``: ``kafka:<topic>`` for the live source, ``file`` for replays."""

DEAD_LETTERS = Counter(
    "journeyflow_dead_letters",
    "Messages not processed, by dead-letter code.",
    ["reason"],
)
"""Label ``reason``: the dead letter's ``code`` (``missing_field``, ``late``...),
not its free-text reason, which would make one series per message."""

DUPLICATES = Counter("journeyflow_duplicates", "Events dropped as duplicates of an event id.")

LATE_EVENTS = Counter("journeyflow_late_events", "Events too late to apply.")

SESSIONS_CLOSED = Counter("journeyflow_sessions_closed", "Sessions closed.")

SEGMENT_ENTRIES = Counter(
    "journeyflow_segment_entries", "Users entering a segment.", ["segment"]
)

SEGMENT_EXITS = Counter("journeyflow_segment_exits", "Users leaving a segment.", ["segment"])

TRIGGERS = Counter(
    "journeyflow_triggers",
    "Triggers fired, by rule and variant (holdout included).",
    ["rule", "variant"],
)

RULE_ERRORS = Counter(
    "journeyflow_rule_errors",
    "Rule evaluations that failed at run time (treated as false), by rule.",
    ["rule"],
)
"""Label ``rule``: the segment or trigger name (a small, fixed set)."""


def rule_error_counts() -> dict[str, int]:
    """Return the run-time rule failures counted so far in this process, by rule."""
    counts: dict[str, int] = {}
    for metric in RULE_ERRORS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["rule"]] = int(sample.value)
    return counts


MODEL_SCORE = Histogram(
    "journeyflow_model_score",
    "Scores a model gave (probabilities, 0 to 1).",
    ["model"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)

MODEL_DRIFTS = Counter(
    "journeyflow_model_drifts",
    "Drifts ADWIN detected in a model's error stream.",
    ["model"],
)

MODEL_AUC = Gauge(
    "journeyflow_model_progressive_auc",
    "A model's ROC AUC on examples scored before it learned them.",
    ["model"],
)

KAFKA_LAG = Gauge(
    "journeyflow_kafka_lag",
    "Messages on the broker not read yet, per input partition "
    "(high watermark of the last fetch minus the next offset to read).",
    ["topic", "partition"],
)

KAFKA_ERRORS = Counter(
    "journeyflow_kafka_errors",
    "Kafka failures seen while running (broker unreachable, delivery failed).",
)

REDIS_WRITE_ERRORS = Counter(
    "journeyflow_redis_write_errors",
    "Failed attempts to write a batch to Redis (each retry counts).",
)

# -- closed loop (operators/loop.py) --
CONVERSIONS = Counter(
    "journeyflow_conversions",
    "Triggers (and held-out would-be triggers) that reached their conversion goal, by rule and variant.",
    ["rule", "variant"],
)

ATTRIBUTIONS_EXPIRED = Counter(
    "journeyflow_attributions_expired",
    "Triggers whose attribution window passed without a conversion, by rule and variant.",
    ["rule", "variant"],
)

CONVERSION_RATE = Gauge(
    "journeyflow_conversion_rate",
    "Conversion rate of the triggers whose window has passed, by rule and variant (holdout included).",
    ["rule", "variant"],
)

UPLIFT = Gauge(
    "journeyflow_uplift",
    "Treated minus holdout conversion rate of a rule (stat abs) and its 95% Newcombe interval (ci95_low, ci95_high).",
    ["rule", "stat"],
)

READY = Gauge(
    "journeyflow_ready",
    "1 once the worker has connected and runs, and no service it writes to is down; else 0.",
)

SERVICE_DOWN = Gauge(
    "journeyflow_service_down",
    "1 while the worker waits for a lost service (its input is paused meanwhile); else 0.",
    ["service"],
)
"""Label ``service``: ``redis`` or ``kafka``."""

UNDELIVERABLE = Counter(
    "journeyflow_undeliverable_records",
    "Output records a topic refused for good (too large...), sent to the dead letters instead.",
    ["topic"],
)


class _Readiness:
    """What ``journeyflow_ready`` says: running, and no client waiting for its service.

    Clients in several worker threads report their outages, so the counts
    are kept under a lock; the gauges are only ever set from here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False
        self._down: dict[str, int] = {}

    def set_running(self, running: bool) -> None:
        with self._lock:
            self._running = running
            self._publish()

    def change(self, service: str, delta: int) -> None:
        with self._lock:
            count = max(0, self._down.get(service, 0) + delta)
            self._down[service] = count
            SERVICE_DOWN.labels(service=service).set(1 if count else 0)
            self._publish()

    def _publish(self) -> None:
        READY.set(1 if self._running and not any(self._down.values()) else 0)


_READINESS = _Readiness()


def set_running(running: bool) -> None:
    """Say the worker runs (after its start-up checks) or has stopped."""
    _READINESS.set_running(running)


def service_down(service: str) -> None:
    """Say one client lost ``service``: not ready until every such client recovers."""
    _READINESS.change(service, +1)


def service_up(service: str) -> None:
    """Say a client that had lost ``service`` reaches it again."""
    _READINESS.change(service, -1)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Serve the default registry at ``http://addr:port/metrics`` from a daemon thread.

    Use it when bytewax's own API server is off. Returns the server and its
    thread; ``server.shutdown()`` stops it. ``port`` 0 picks a free port
    (``server.server_port`` says which). A port in use or an address that
    cannot be bound raises ``ConfigError`` (one line at start-up).
    """
    if not 0 <= port < 65536:
        msg = f"metrics port must be 0..65535; got {port} instead"
        raise ValueError(msg)
    try:
        return start_http_server(port, addr=addr)
    except OSError as ex:
        msg = f"run.metrics_port {port} on {addr} cannot be served: {ex.strerror or ex}"
        raise ConfigError(msg) from ex
