"""A replay cluster's models hop: compact asks score as whole updates do; answers join back in emitted order."""

from __future__ import annotations

import copy
import pickle
import random

from journeyflow.step_records import UserUpdate
from operators.features import pack, pack_rows
from operators.labels import Example
from operators.pickled_once import PickledOnce
from operators.model_batches import Answers, AskBatch, AwaitScores, BatchedModels, Home, Scored, asks_of, wants_scores
from tests.operators.test_models import CFG, _vector


def _updates(n: int, seed: int) -> list[tuple[str, UserUpdate]]:
    """Keyed updates in the journey step's mix: examples alone, scores asked, nothing for the models."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = f"u{i % 40}"
        label = rng.random() < 0.4
        examples = (Example("churn", i, pack(_vector(rng, label)), label),) if i % 3 else ()
        features = pack_rows((_vector(rng, label),) * 5) if i % 4 == 0 or i > n // 2 else None
        kind = "merge" if i % 17 == 0 else "update"
        out.append((user, UserUpdate(user, i * 1000, kind, "event", None, (), {}, features=features, examples=examples)))
    return out


def test_batched_asks_give_the_scores_of_whole_updates() -> None:
    items = _updates(600, seed=5)
    whole = CFG.build(None)
    expected = []
    for key, update in copy.deepcopy(items):
        (scored,), _ = whole.on_item(update)
        if wants_scores(scored):
            expected.append((key, scored.scores))
    batched = BatchedModels(CFG.build(None))
    answers = []
    for start in range(0, len(items), 50):
        asks = PickledOnce(AskBatch("u0", asks_of(items[start : start + 50])))
        if start % 100:
            # Every other batch as it arrives from the other process: pickled twice, unpickled once.
            pickle.dumps(asks)
            asks = pickle.loads(pickle.dumps(asks))
        out, discard = batched.on_item(asks)
        assert not discard
        assert all(type(batch) is Answers and batch.reply_to == "u0" for batch in out)
        # Handed out by the asking worker's Home step, in the asks' order.
        pairs, dropped = Home().on_batch(out)
        assert dropped
        answers += [(key, answer.scores) for key, answer in pairs]
    assert answers == expected
    assert any(scores and "churn_risk" in scores for _, scores in answers)
    # Updates with nothing for the models do not go.
    idle = UserUpdate("u1", 0, "update", "event", None, (), {})
    assert asks_of([("u1", idle)]) == []
    assert batched.inner.state.scored == whole.state.scored


def test_updates_leave_in_emitted_order_whichever_comes_first() -> None:
    wants = [UserUpdate("u1", i, "update", "event", None, (), {}, features=b"x") for i in range(3)]
    plain = UserUpdate("u1", 9, "update", "event", None, (), {})
    join = AwaitScores()
    assert join.on_item(wants[0]) == ([], False)
    # An update that wants nothing waits behind one that waits for its scores.
    assert join.on_item(plain) == ([], False)
    out, discard = join.on_item(Scored({"churn_risk": 0.5}))
    assert out == [wants[0], plain] and discard
    assert wants[0].scores == {"churn_risk": 0.5}
    # An answer may come before its update (another worker's path was faster).
    join = AwaitScores()
    assert join.on_item(Scored({"n": 1})) == ([], False)
    out, discard = join.on_item(wants[1])
    assert out == [wants[1]] and wants[1].scores == {"n": 1} and discard
    # Nothing waiting: an update that wants nothing passes at once.
    assert AwaitScores().on_item(plain) == ([plain], True)
