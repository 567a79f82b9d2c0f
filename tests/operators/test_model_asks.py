"""What one item asks of the models: snapshots, examples and the score, sent with its last update."""

from __future__ import annotations

import math
import random
import struct

from flows.step_configs import journey_config
from journeyflow.step_records import UserUpdate
from operators import cluster_features, features, profiles
from operators.cluster_features import CLUSTER_FEATURES
from operators.journey_state import JourneyState, view_of
from operators.labels import Example
from operators.feature_layout import BG_AGE, CLASSIFIER_FEATURES, LAYOUT, PACKED, STEADY_FEATURES
from operators.model_asks import (
    ModelAsks,
    ScoreAsk,
    compact_rows,
    expand_rows,
    flush,
    pack_placing,
    payload,
    take_snapshot,
    unpack_placing,
)
from operators.rules import load_rules
from tests.helpers import settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
DAY = 86_400_000


def _user() -> JourneyState:
    state = JourneyState(user="u1", max_ts_ms=5 * DAY)
    state.profile = profiles.new_profile(0)
    return state


def test_a_snapshot_keeps_the_features_as_of_its_time() -> None:
    state = _user()
    take_snapshot(state, CFG, 3 * DAY)
    (pending,) = state.pending
    assert pending.ts_ms == 3 * DAY == state.snapshot_ms
    expected = features.snapshot_vector(view_of(state, CFG, 3 * DAY))
    assert features.unpack(pending.features) == expected


def test_nothing_asked_sends_nothing() -> None:
    out: list = []
    flush(ModelAsks(), _user(), CFG, out)
    assert out == []


def test_a_score_rides_on_the_items_last_update() -> None:
    state = _user()
    first = UserUpdate("u1", 1, "update", "event", "e1", (), {})
    last = UserUpdate("u1", 2, "update", "event", "e2", (), {})
    out: list = [first, "a session", last, "a trigger"]
    asks = ModelAsks(score=ScoreAsk(4 * DAY, "session_close", "e2", True))
    flush(asks, state, CFG, out)
    assert out[0] is first and out[3] == "a trigger"
    sent = out[2]
    assert sent.features == features.scoring_vectors(view_of(state, CFG, 4 * DAY), CFG.labels)
    assert sent.cluster_features is not None and sent.learn_cluster
    assert state.scored_ms == 4 * DAY and asks.score is None and asks.examples == ()


def test_examples_alone_come_in_an_update_of_their_own_without_values() -> None:
    state = _user()
    example = Example("churn", DAY, b"", True)
    asks = ModelAsks(examples=(example,))
    out: list = []
    flush(asks, state, CFG, out)
    (update,) = out
    assert (update.cause, update.ts_ms, update.examples, update.values, update.features) == (
        "labels",
        5 * DAY,
        (example,),
        {},
        None,
    )


def test_a_user_dropped_meanwhile_sends_nothing() -> None:
    asks = ModelAsks(score=ScoreAsk(DAY, "time", None, True))
    out: list = []
    flush(asks, JourneyState(user="u1"), CFG, out)
    assert out == [] and asks.score is None


def test_the_placed_cluster_features_pack_to_the_same_dict() -> None:
    # A replay keeps the last placed score's cluster features packed until the end of input:
    # unpacked, the same keys in the same order and the same floats, bit for bit.
    state = _user()
    state.profile.events_total = 7
    state.profile.cart_adds_total = 3
    placing = cluster_features.cluster_features(view_of(state, CFG, 4 * DAY))
    assert tuple(placing) == CLUSTER_FEATURES  # the order the pack assumes
    unpacked = unpack_placing(pack_placing(placing))
    assert list(unpacked.items()) == list(placing.items())
    assert unpacked is not unpack_placing(pack_placing(placing))
    odd = dict.fromkeys(CLUSTER_FEATURES, 0.1)
    odd["basket"] = -0.0
    odd["conversion_rate"] = 1e-300
    assert [math.copysign(1.0, v) for v in unpack_placing(pack_placing(odd)).values()] == [1.0] + [-1.0] + [1.0] * 8
    assert unpack_placing(pack_placing(odd)) == odd


def test_the_end_of_input_as_of_the_placed_score_sends_the_same_rows_and_cluster_features() -> None:
    state = _user()
    state.profile.events_total = 4
    asks = ModelAsks(score=ScoreAsk(4 * DAY, "time", None, True))
    ticked = payload(asks, state, CFG, keep_placed=True)
    assert asks.placed_ms == 4 * DAY
    # Kept compact: the first row and the later rows' timed columns.
    rows = len(ticked["features"]) // LAYOUT.size
    assert asks.placed_compact and len(asks.placed) == LAYOUT.size * rows - 8 * len(_STEADY) * (rows - 1)
    asks.score = ScoreAsk(4 * DAY, "eof", None, True)
    final = payload(asks, state, CFG)
    assert final["features"] == ticked["features"]
    assert list(final["cluster_features"].items()) == list(ticked["cluster_features"].items())
    assert final["cluster_features"] is not ticked["cluster_features"]


def test_only_time_passing_keeps_the_placed_rows_and_the_end_of_input_forgets_them() -> None:
    state = _user()
    state.profile.events_total = 4
    asks = ModelAsks(score=ScoreAsk(4 * DAY, "session_close", None, True))
    payload(asks, state, CFG)  # an event's item: the step forgets them at its end anyway
    assert asks.placed is None and asks.placed_cluster == b""
    asks.score = ScoreAsk(4 * DAY, "time", None, True)
    ticked = payload(asks, state, CFG, keep_placed=True)
    assert asks.placed is not None and asks.placed_cluster
    asks.score = ScoreAsk(4 * DAY, "time", None, True)
    final = payload(asks, state, CFG)  # the end of input: the last score of this view
    assert final["features"] == ticked["features"]
    assert asks.placed is None and asks.placed_cluster == b""


#: Columns the compact rows keep once: the declared steady features and the prior's counts.
_STEADY = [i for i, name in enumerate(PACKED) if name in STEADY_FEATURES or len(CLASSIFIER_FEATURES) <= i < BG_AGE]


def _rows(rng: random.Random, n: int) -> list[list[float]]:
    """``n`` rows whose steady columns equal the first row's and whose others vary (odd floats too)."""
    odd = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e308]
    first = [rng.choice(odd) if rng.random() < 0.2 else rng.uniform(-9, 9) for _ in PACKED]
    rows = [first]
    for _ in range(n - 1):
        row = [rng.choice(odd) if rng.random() < 0.2 else rng.uniform(-9, 9) for _ in PACKED]
        for i in _STEADY:
            row[i] = first[i]
        rows.append(row)
    return rows


def test_compact_rows_give_the_same_bytes_back() -> None:
    # Every later row's timed columns kept, the steady ones taken from the first row: bit for bit.
    rng = random.Random(18)
    for n in (1, 2, 5, 7):
        for _ in range(50):
            packed = b"".join([LAYOUT.pack(*row) for row in _rows(rng, n)])
            compact = compact_rows(packed)
            assert compact is not None
            assert len(compact) == LAYOUT.size + (n - 1) * 8 * (len(PACKED) - len(_STEADY))
            assert expand_rows(compact) == packed


def test_rows_whose_steady_column_differs_are_kept_whole() -> None:
    rng = random.Random(5)
    for column in _STEADY:
        rows = _rows(rng, 5)
        rows[rng.randrange(1, 5)][column] = -rows[0][column] if rows[0][column] else -0.0  # (-0.0: the bits differ)
        assert compact_rows(b"".join([LAYOUT.pack(*row) for row in rows])) is None
    # A NaN with other bits is another value too (compared as bytes, not as floats).
    rows = _rows(rng, 3)
    rows[0][_STEADY[0]] = math.nan
    packed = bytearray(b"".join([LAYOUT.pack(*row) for row in rows]))
    quiet = struct.pack("<Q", 0x7FF8000000000001)
    at = 2 * LAYOUT.size + 8 * _STEADY[0]
    packed[at : at + 8] = quiet
    assert compact_rows(bytes(packed)) is None


def test_a_score_s_own_rows_compact_and_expand() -> None:
    # The steady columns declared are what scoring_vectors computes once (else every customer
    # would keep the whole rows: no output would move, but no memory would be saved).
    state = _user()
    profile = state.profile
    profile.events_total = 9
    profile.purchases_total = 2
    profile.revenue_total = 80.0
    profile.last_purchase_ms = 2 * DAY
    profile.last_seen_ms = 3 * DAY
    profile.sessions_closed = 3
    profile.session_ms_total = 600_000
    rows = features.scoring_vectors(view_of(state, CFG, 4 * DAY), CFG.labels)
    compact = compact_rows(rows)
    assert compact is not None and expand_rows(compact) == rows
