"""The models step's report, from a state as the step keeps it."""

from __future__ import annotations

import dataclasses

from operators.model_report import models_report
from operators.models import ModelConfig
from state.serde import decode_state

CFG = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)


def test_untrained_models_report_both_tasks_with_unfitted_priors_and_no_state_unless_asked() -> None:
    state = CFG.new_state()
    report = models_report(state, CFG.min_examples, stack=False)
    assert set(report.tasks) == {"churn", "propensity"}
    assert report.tasks["churn"]["prior"] == {"over": "sessions", "customers": 0, "fits": 0, "params": None}
    assert report.tasks["propensity"]["prior"]["over"] == "purchases"
    assert "stack" not in report.tasks["churn"]
    assert report.state is None and report.silhouette is None and report.scored == 0


def test_the_stacks_are_reported_when_on_and_the_exported_state_decodes() -> None:
    state = CFG.new_state()
    report = models_report(state, CFG.min_examples, stack=True, with_state=True)
    assert {"stack"} <= set(report.tasks["churn"]) and {"stack"} <= set(report.tasks["propensity"])
    assert report.state is not None
    again = decode_state(report.state, type(state))
    assert [f.name for f in dataclasses.fields(again)] == [f.name for f in dataclasses.fields(state)]
    assert again.model_version == state.model_version
