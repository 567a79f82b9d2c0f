"""What one item asks of the models step: labelled examples to learn, a score to compute.

The per-user step collects, while it handles an item, the examples whose
labels resolved (:mod:`operators.labels`) and at most one score request
(:class:`ScoreAsk`: the latest wins), and sends them with the item's last
update (:func:`flush`), so the audience step sees new segments and new scores
together. Snapshots waiting for their labels are taken here too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from journeyflow.events import Event
from journeyflow.step_records import UserUpdate
from operators import cluster_features, features, labels, updates
from operators.cluster_features import CLUSTER_FEATURES
from operators.feature_layout import BG_AGE, CLASSIFIER_FEATURES, LAYOUT, PACKED, STEADY_FEATURES
from operators.journey_state import NO_PENDING, JourneyConfig, JourneyState, view_of
from operators.labels import Example, Pending

__all__ = [
    "ScoreAsk",
    "ModelAsks",
    "on_event",
    "on_time",
    "take_snapshot",
    "payload",
    "pack_placing",
    "unpack_placing",
    "compact_rows",
    "expand_rows",
    "flush",
]

#: Event types after which the models score the user again: a purchase always,
#: cart changes at most once per _EVENT_RESCORE_MS (a cart filled item by item
#: needs one fresh score, not one per item).
_SCORE_EVENTS: Final = frozenset({"purchase", "add_to_cart", "remove_from_cart", "checkout_start"})
_EVENT_RESCORE_MS: Final = 10 * 60_000
#: The cluster features of a placed score, packed (:func:`pack_placing`).
_PLACING: Final = struct.Struct(f"<{len(CLUSTER_FEATURES)}d")


def _runs(steady: bool) -> tuple[tuple[int, int], ...]:
    """Return the byte ranges of a packed row (``LAYOUT``) whose columns are steady (or not), adjacent ones joined.

    Steady: :data:`STEADY_FEATURES` and the prior's counts (all of the prior's figures but the
    age), which ``features.scoring_vectors`` computes once per view: the same in every row.
    """
    runs: list[tuple[int, int]] = []
    for column, name in enumerate(PACKED):
        prior_count = column >= len(CLASSIFIER_FEATURES) and column != BG_AGE
        if (name in STEADY_FEATURES or prior_count) != steady:
            continue
        if runs and runs[-1][1] == 8 * column:
            runs[-1] = (runs[-1][0], 8 * column + 8)
        else:
            runs.append((8 * column, 8 * column + 8))
    return tuple(runs)


#: A placed score's rows kept compact (:func:`compact_rows`): the byte ranges of a row's
#: steady columns, of its other (timed) columns, and every range in row order with a flag.
_STEADY_RUNS: Final = _runs(True)
_TIMED_RUNS: Final = _runs(False)
_ALL_RUNS: Final = tuple(
    sorted([(start, end, True) for start, end in _TIMED_RUNS] + [(start, end, False) for start, end in _STEADY_RUNS])
)
_ROW: Final = LAYOUT.size
_TIMED_BYTES: Final = sum([end - start for start, end in _TIMED_RUNS])


class ScoreAsk:
    """Score the user as of ``at_ms`` (and, with ``place``, place it in a cluster).

    ``cause`` says why: ``event``, ``session_close``, ``merge`` or ``time``.
    ``place``: place the user in a cluster and let the clusters learn from it: at a
    session's close and as time passes, not on every cart change (clusters move slowly).

    A plain class, not a frozen dataclass: one is made for most ticks and every
    score an event asks, and a frozen dataclass's interpreted ``__init__`` (one
    ``object.__setattr__`` a field) cost more than the rest of the ask. Never changed
    once made (nothing assigns its fields), never in a snapshot.
    """

    __slots__ = ("at_ms", "cause", "cause_event_id", "place")

    def __init__(self, at_ms: int, cause: str, cause_event_id: str | None, place: bool) -> None:
        self.at_ms = at_ms
        self.cause = cause
        self.cause_event_id = cause_event_id
        self.place = place

    def __repr__(self) -> str:
        return f"ScoreAsk({self.at_ms}, {self.cause!r}, {self.cause_event_id!r}, {self.place})"


@dataclass(slots=True)
class ModelAsks:
    """What the item being handled asks of the models (emptied by :func:`flush`)."""

    examples: tuple[Example, ...] = ()
    """Labelled snapshots to learn from (a tuple: most users hold none, and an
    empty tuple costs them no list of their own)."""
    score: ScoreAsk | None = None
    placed: bytes | None = None
    """The feature rows of the last placed score while nothing they read has changed since
    (the step sets None when something may have): a replay's last tick and the end of input
    score the same view. Kept compact when ``placed_compact`` (:func:`compact_rows`: 640
    bytes instead of 1,120 for five rows; every customer holds them at a replay's peak).
    With them, as of ``placed_ms``, the score's cluster features packed
    (:func:`pack_placing`). Separate fields rather than a tuple, and the cluster features as
    bytes rather than a dict: every customer holds them from the last tick to the end of
    input, a replay's peak (a dict of ten boxed floats is about 590 bytes, the packed ones
    113; the tuple and the boxed time 96 more). The step forgets the rows alone (sets
    ``placed`` None): the 113 bytes left wait for the next placed score."""
    placed_ms: int = 0
    placed_cluster: bytes = b""
    placed_compact: bool = False

    def clear(self) -> None:
        """Forget what was asked (the user's state was dropped)."""
        self.examples = ()
        self.score = None
        self.placed = None
        self.placed_cluster = b""
        self.placed_compact = False


def on_event(asks: ModelAsks, state: JourneyState, cfg: JourneyConfig, event: Event) -> None:
    """Resolve the labels an event settles and ask for the score it calls for (applied to the profile)."""
    ts = event.ts_ms
    if state.pending:
        done = labels.on_activity(state.pending, cfg.labels, ts, event.type == "purchase")
        if done:
            asks.examples += tuple(done)
            if not state.pending:
                state.pending = NO_PENDING
    if event.type in _SCORE_EVENTS and (event.type == "purchase" or ts - state.scored_ms >= _EVENT_RESCORE_MS):
        asks.score = ScoreAsk(state.max_ts_ms, "event", event.event_id, False)  # type: ignore[arg-type]


def on_time(asks: ModelAsks, state: JourneyState, cfg: JourneyConfig, now_ms: int) -> None:
    """Take the snapshots due on the grid before ``now_ms`` and resolve the labels time settles.

    Cheap tests first: most events find no snapshot and no label due.
    """
    profile = state.profile
    assert profile is not None
    interval = cfg.labels.interval_ms
    if now_ms // interval > state.snapshot_ms // interval:
        for t in labels.snapshot_times(cfg.labels, state.snapshot_ms, profile.last_seen_ms, now_ms):
            take_snapshot(state, cfg, t)
        state.snapshot_ms = now_ms
    if state.pending and now_ms - state.pending[0].ts_ms > interval:
        done = labels.on_time(state.pending, cfg.labels, now_ms)
        if done:
            asks.examples += tuple(done)
            if not state.pending:
                state.pending = NO_PENDING


def take_snapshot(state: JourneyState, cfg: JourneyConfig, at_ms: int) -> None:
    """Keep the user's features at ``at_ms`` until their labels are known."""
    packed = features.snapshot_packed(view_of(state, cfg, at_ms))
    if state.pending is NO_PENDING:
        state.pending = []  # the user's own (journey_state.NO_PENDING is shared)
    state.pending.append(Pending(at_ms, packed))
    state.snapshot_ms = at_ms


def payload(asks: ModelAsks, state: JourneyState, cfg: JourneyConfig, keep_placed: bool = False) -> dict[str, Any]:
    """Return what the item asks of the models as an update's fields (and empty ``asks``).

    The profile must exist. A score asked sets ``features`` (and, to place the
    user, ``cluster_features`` and ``learn_cluster``) and moves ``scored_ms``.
    ``keep_placed``: keep a placed score's rows for a later score of the same view (a
    replay's last tick: the end of input follows as of the same time); after an event (the
    step forgets them at the item's end), any other tick (the next score is as of a later
    time) or the end of input nothing would read them.
    """
    extra: dict[str, Any] = {"examples": asks.examples}
    score = asks.score
    asks.examples = ()
    asks.score = None
    if score is not None:
        placed = asks.placed
        if score.place and placed is not None and asks.placed_ms == score.at_ms:
            # The same view as the last placed score's: the same rows (a copy of the
            # clusters' dict, so that no reader of one update can change the other).
            extra["features"] = expand_rows(placed) if asks.placed_compact else placed
            extra["cluster_features"] = unpack_placing(asks.placed_cluster)
            extra["learn_cluster"] = True
            if not keep_placed:
                asks.placed = None  # (no later score of this view: see keep_placed)
                asks.placed_cluster = b""
        else:
            view = view_of(state, cfg, score.at_ms)
            rows = features.scoring_vectors(view, cfg.labels)
            extra["features"] = rows
            if score.place:
                placing = cluster_features.cluster_features(view)
                extra["cluster_features"] = placing
                extra["learn_cluster"] = True
                if keep_placed and not cfg.timers:
                    # Kept in replays only, where the end of input follows the last tick: live,
                    # the rows would wait in memory with every idle user for nothing.
                    compact = compact_rows(rows)
                    asks.placed = rows if compact is None else compact
                    asks.placed_compact = compact is not None
                    asks.placed_ms = score.at_ms
                    asks.placed_cluster = pack_placing(placing)
                else:
                    asks.placed = None  # (an earlier view's: no later score asks for it)
                    asks.placed_cluster = b""
        state.scored_ms = max(state.scored_ms, score.at_ms)
    return extra


def pack_placing(placing: dict[str, float]) -> bytes:
    """Return the cluster features ``placing`` as doubles in ``CLUSTER_FEATURES`` order
    (the same floats: a double holds a float exactly)."""
    return _PLACING.pack(*[placing[name] for name in CLUSTER_FEATURES])


def unpack_placing(packed: bytes) -> dict[str, float]:
    """Return the dict :func:`pack_placing` packed: the same keys in the same order, the same
    floats (a dict of its own for each update: no reader of one can change another's)."""
    return dict(zip(CLUSTER_FEATURES, _PLACING.unpack(packed), strict=True))


def compact_rows(rows: bytes) -> bytes | None:
    """Return packed ``rows`` as the first row then each later row's timed columns (``_TIMED_RUNS``), or
    None when a later row's steady column differs from the first row's (then keep ``rows`` whole).

    The steady columns are compared as bytes, so :func:`expand_rows` gives ``rows`` back bit
    for bit (signed zeros, NaNs). Only the declared columns are checked, with a few slice
    comparisons: checking every column (mem16) cost more than the ticks could pay.
    """
    first = rows[:_ROW]
    steady = [first[start:end] for start, end in _STEADY_RUNS]
    parts = [first]
    for base in range(_ROW, len(rows), _ROW):
        index = 0
        for start, end in _STEADY_RUNS:
            if rows[base + start : base + end] != steady[index]:
                return None
            index += 1
        for start, end in _TIMED_RUNS:
            parts.append(rows[base + start : base + end])
    return b"".join(parts)


def expand_rows(compact: bytes) -> bytes:
    """Return the rows :func:`compact_rows` made ``compact`` of (a new ``bytes``, equal to theirs)."""
    first = compact[:_ROW]
    steady = [first[start:end] for start, end in _STEADY_RUNS]
    parts = [first]
    for base in range(_ROW, len(compact), _TIMED_BYTES):
        at = base
        index = 0
        for start, end, timed in _ALL_RUNS:
            if timed:
                parts.append(compact[at : at + end - start])
                at += end - start
            else:
                parts.append(steady[index])
                index += 1
    return b"".join(parts)


def flush(
    asks: ModelAsks,
    state: JourneyState,
    cfg: JourneyConfig,
    out: list[Any],
    keep_placed: bool = False,
    judged: tuple[int, tuple[Any, ...]] | None = None,
) -> None:
    """Send the models what the item asked of them, with the item's last update in ``out``.

    Without an update in ``out``, one is added (kind ``update``, cause ``labels``
    when only examples are sent). ``keep_placed``: as for :func:`payload`. ``judged``:
    when the segments were last judged and the inputs they read, if nothing they read has
    changed since (:meth:`~operators.journey.JourneyLogic.judged_inputs`); an update added
    as of that time takes those values from them.
    """
    if not asks.examples and asks.score is None:
        return
    if state.profile is None:
        asks.clear()
        return
    score = asks.score
    extra = payload(asks, state, cfg, keep_placed)
    for index in range(len(out) - 1, -1, -1):
        if isinstance(out[index], UserUpdate):
            # Not yet emitted: the item's records leave the step together, so the
            # update is completed in place (a copy cost more than the fields it sets).
            record = out[index]
            for name, value in extra.items():
                setattr(record, name, value)
            return
    view = None if score is None else view_of(state, cfg, score.at_ms)
    inputs = None
    if score is None:
        score = ScoreAsk(state.max_ts_ms or 0, "labels", None, False)
    elif judged is not None and judged[0] == score.at_ms:
        # A tick's score is as of the tick, when the segments were just judged: 7 of the
        # default 12 values read once.
        inputs = judged[1]
    out.append(updates.update(state, cfg, score.at_ms, "update", score.cause, score.cause_event_id, view, inputs=inputs, **extra))
