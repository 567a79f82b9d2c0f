"""Delayed labels: returns and purchases resolve early, horizons resolve late."""

from __future__ import annotations

from operators.labels import LabelConfig, Pending, idle_snapshot_times, on_activity, on_time

DAY = 86_400_000
CFG = LabelConfig(churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, interval_ms=7 * DAY, idle_after_ms=1800_000)


def test_a_return_within_the_horizon_labels_not_churned_and_keeps_waiting_for_a_purchase() -> None:
    pending = [Pending(0, b"f")]
    examples = on_activity(pending, CFG, 5 * DAY, purchased=False)
    assert [(e.task, e.label) for e in examples] == [("churn", False)]
    assert pending[0].purchase is None  # still waiting
    assert on_time(pending, CFG, 29 * DAY) == []
    late = on_time(pending, CFG, 30 * DAY + 1)
    assert [(e.task, e.label) for e in late] == [("propensity", False)]
    assert pending == []


def test_no_return_within_the_horizon_is_churn_and_a_later_return_changes_nothing() -> None:
    pending = [Pending(0, b"f")]
    examples = on_time(pending, CFG, 31 * DAY)
    assert sorted((e.task, e.label) for e in examples) == [("churn", True), ("propensity", False)]
    assert on_activity(pending, CFG, 32 * DAY, purchased=True) == []


def test_activity_before_the_snapshot_does_not_label_it() -> None:
    pending = [Pending(10 * DAY, b"f")]
    assert on_activity(pending, CFG, 9 * DAY, purchased=True) == []


def test_idle_snapshots_fall_while_away_and_stop_after_the_horizon() -> None:
    times = idle_snapshot_times(CFG, last_snapshot_ms=0, last_seen_ms=DAY, now_ms=100 * DAY)
    assert times[0] == 7 * DAY and times[-1] <= DAY + 30 * DAY
    assert all(b - a == 7 * DAY for a, b in zip(times, times[1:]))
    assert idle_snapshot_times(CFG, last_snapshot_ms=0, last_seen_ms=6 * DAY, now_ms=6 * DAY + 1000) == []
