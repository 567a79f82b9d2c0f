"""What one item asks of the models: snapshots, examples and the score, sent with its last update."""

from __future__ import annotations

import math

from flows.step_configs import journey_config
from journeyflow.step_records import UserUpdate
from operators import cluster_features, features, profiles
from operators.cluster_features import CLUSTER_FEATURES
from operators.journey_state import JourneyState, view_of
from operators.labels import Example
from operators.model_asks import ModelAsks, ScoreAsk, flush, pack_placing, payload, take_snapshot, unpack_placing
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
    assert asks.placed is ticked["features"] and asks.placed_ms == 4 * DAY
    asks.score = ScoreAsk(4 * DAY, "eof", None, True)
    final = payload(asks, state, CFG)
    assert final["features"] is ticked["features"]
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
