"""Labels: every known user is snapshotted on one grid; each snapshot is labelled over the next interval."""

from __future__ import annotations

from operators.labels import LabelConfig, Pending, on_activity, on_time, snapshot_times

DAY = 86_400_000
CFG = LabelConfig(interval_ms=7 * DAY, churn_horizon_ms=30 * DAY, purchase_horizon_ms=30 * DAY, max_silence_ms=90 * DAY)


def test_a_return_within_the_interval_labels_not_churned_and_keeps_waiting_for_a_purchase() -> None:
    pending = [Pending(0, b"f")]
    examples = on_activity(pending, CFG, 5 * DAY, purchased=False)
    assert [(e.task, e.label) for e in examples] == [("churn", False)]
    assert pending[0].purchase is None  # still waiting
    assert on_time(pending, CFG, 7 * DAY) == []
    late = on_time(pending, CFG, 7 * DAY + 1)
    assert [(e.task, e.label) for e in late] == [("propensity", False)]
    assert pending == []


def test_a_silent_interval_is_churn_and_a_later_return_changes_nothing() -> None:
    pending = [Pending(0, b"f")]
    examples = on_time(pending, CFG, 8 * DAY)
    assert sorted((e.task, e.label) for e in examples) == [("churn", True), ("propensity", False)]
    assert on_activity(pending, CFG, 9 * DAY, purchased=True) == []


def test_activity_before_the_snapshot_does_not_label_it() -> None:
    pending = [Pending(10 * DAY, b"f")]
    assert on_activity(pending, CFG, 9 * DAY, purchased=True) == []


def test_snapshots_fall_on_the_same_grid_for_everyone_active_or_silent() -> None:
    # Two users seen at different times get snapshots at the same moments.
    busy = snapshot_times(CFG, last_snapshot_ms=DAY, last_seen_ms=20 * DAY, now_ms=21 * DAY)
    quiet = snapshot_times(CFG, last_snapshot_ms=3 * DAY, last_seen_ms=3 * DAY, now_ms=21 * DAY)
    assert busy == quiet == [7 * DAY, 14 * DAY, 21 * DAY]
    # Nothing twice, nothing between grid moments.
    assert snapshot_times(CFG, last_snapshot_ms=21 * DAY, last_seen_ms=21 * DAY, now_ms=27 * DAY) == []


def test_snapshots_stop_after_the_longest_silence() -> None:
    times = snapshot_times(CFG, last_snapshot_ms=0, last_seen_ms=DAY, now_ms=400 * DAY)
    assert times[-1] <= DAY + 90 * DAY < times[-1] + 7 * DAY
