"""The hop to the one models step and back: whole updates, or, in a replay cluster, compact asks.

::

    updates (by key) ─► to_models ─► models (one key) ─► route_models ─► scored (by user) ─► audience
                                                              └─► report

With ``apart`` (a replay cluster, see :mod:`operators.model_batches`) the
updates stay on their own worker while the models step gets one list of
compact asks per batch and answers with scores, which ``await_scores``
joins back to the updates::

    updates (by key) ─┬─► to_models: [ModelAsk] per batch ─► models ─► answers per batch ─► scores_home ─┐
                      │                                                       (to the asking worker)   │ (key, Scored)
                      └──────────────────────────────────────────────────────► await_scores (by key) ◄──┘ ─► scored (by user)

Without it (one process, the live worker) the steps, their ids and what
crosses them are those the flow always had.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.operators import KeyedStream

from config.settings import Settings
from flows.routing import is_a, rekey, route
from flows.step_configs import model_config
from journeyflow.records import ModelReport
from journeyflow.step_records import UserUpdate
from operators.model_batches import Answers, AskBatch, AwaitScores, BatchedModels, Home, Scored, asks_of
from operators.pickled_once import PickledOnce
from operators.unsaved import stateful, stateful_batch

__all__ = ["models_hop"]


def _back_to_users(items: list[tuple[str, UserUpdate]]) -> list[tuple[str, UserUpdate]]:
    """Key scored updates by user again, without what only the models read (less to pickle in a cluster)."""
    for _, update in items:
        update.drop_model_inputs()
    return [(update.user_id, update) for _, update in items]


def _answers(items: list[tuple[str, Answers]]) -> list[tuple[str, Answers]]:
    return [(answers.reply_to, answers) for _, answers in items]


def _scored(items: list[tuple[str, tuple[str, Scored]]]) -> list[tuple[str, Scored]]:
    return [pair for _, pair in items]


def models_hop(
    settings: Settings, updates: KeyedStream[UserUpdate], *, models_key: str, apart: bool, snapshots: bool
) -> tuple[KeyedStream[UserUpdate], KeyedStream[ModelReport]]:
    """Add the models step; return the scored updates keyed by user, and the models' report (keyed by the models' key)."""
    cfg = model_config(settings)
    if not apart:
        learned = stateful("models", rekey("to_models", updates, models_key), cfg.build, snapshots=snapshots)
        # ("models", UserUpdate with scores | ModelReport)
        modelled = route("route_models", learned, [("scored", is_a(UserUpdate)), ("report", is_a(ModelReport))])
        return op.flat_map_batch("scored", modelled["scored"], _back_to_users), modelled["report"]
    if snapshots:
        msg = "the models step apart from the updates must run without snapshots (a replay); got snapshots instead"
        raise ValueError(msg)

    def to_models(items: list[tuple[str, UserUpdate]]) -> list[tuple[str, Any]]:
        asks = asks_of(items)
        # A batch's keys all live on this worker (the per-user step emitted them here):
        # the first is where the answers come back. Pickled once if it crosses to the
        # models' process (bytewax would pickle it twice).
        return [(models_key, PickledOnce(AskBatch(items[0][0], asks)))] if asks else []

    asked = op.flat_map_batch("to_models", updates, to_models)
    # (models key, PickledOnce(AskBatch)): one item per batch and worker
    learned = stateful("models", asked, lambda resume: BatchedModels(cfg.build(resume)), snapshots=False)
    # (models key, Answers | ModelReport)
    modelled = route("route_models", learned, [("answers", is_a(Answers)), ("report", is_a(ModelReport))])
    # (reply_to, Answers): one item per batch, back to the worker that asked
    home = stateful_batch("scores_home", op.flat_map_batch("answers", modelled["answers"], _answers), lambda _: Home(), snapshots=False)
    answers = op.flat_map_batch("scored_answers", home, _scored)
    # (key, Scored): the key lives on this worker, so the join takes it without crossing
    joined = stateful("await_scores", op.merge("updates_and_answers", updates, answers), lambda _: AwaitScores(), snapshots=False)
    return op.flat_map_batch("scored", joined, _back_to_users), modelled["report"]
