"""What the per-user step emits about a user: updates, store rows, counts."""

from __future__ import annotations

from flows.step_configs import journey_config
from operators import profiles, updates
from operators.journey_state import JourneyState, view_of
from operators.rules import load_rules
from operators.views import to_fields
from tests.helpers import settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)


def test_an_update_with_a_view_carries_the_update_variables_and_null_recency_before_a_purchase() -> None:
    state = JourneyState(user="u1", segments=("a", "b"))
    state.profile = profiles.new_profile(0)
    update = updates.update(state, CFG, 5, "update", "event", "e1", view_of(state, CFG, 5))
    assert tuple(update.values) == CFG.update_variables
    assert update.values["recency_days"] is None and update.segments == ("a", "b")
    bare = updates.update(state, CFG, 5, "erase", "forget", "e2", aliases=("a1",))
    assert bare.values == {} and bare.aliases == ("a1",)


def test_a_row_is_the_whole_profile_as_of_its_time() -> None:
    state = JourneyState(user="u1")
    state.profile = profiles.new_profile(0)
    row = updates.row(state, CFG, 1_000)
    assert row.user_id == "u1" and row.ts_ms == 1_000 and "first_seen" in row.fields


def test_counts_are_reported_once() -> None:
    state = JourneyState(user="u1", processed=2, duplicates=1)
    (tally,) = updates.tallies(state)
    assert (tally.processed, tally.duplicates, tally.skipped) == (2, 1, 0)
    assert updates.tallies(state) == []


def test_the_final_update_reads_its_values_from_the_profile_fields_the_same_as_any_update() -> None:
    state = JourneyState(user="u1", segments=("a",))
    state.profile = profiles.new_profile(0)
    state.profile.purchases_total, state.profile.last_purchase_ms = 1, 0
    view = view_of(state, CFG, 3 * 86_400_000)
    final = updates.final(state, CFG, view, learn_cluster=True)
    plain = updates.update(state, CFG, view.now_ms, "final", "time", None, view, to_fields(view), learn_cluster=True)
    assert final == plain and final.values["recency_days"] == 3.0


def test_an_update_given_the_segments_inputs_takes_their_values_and_reads_the_rest() -> None:
    state = JourneyState(user="u1", segments=("a",))
    state.profile = profiles.new_profile(0)
    state.profile.purchases_total, state.profile.last_purchase_ms = 2, 0
    view = view_of(state, CFG, 3 * 86_400_000)
    read = updates.update(state, CFG, view.now_ms, "update", "time", None, view)
    inputs = tuple(get(view) for get in CFG.segment_getters)
    given = updates.update(state, CFG, view.now_ms, "update", "time", None, view, inputs=inputs)
    assert list(given.values.items()) == list(read.values.items()) and given == read
    # Which values come from the inputs: those of the segment variables, at their positions.
    marked = updates.update(state, CFG, view.now_ms, "update", "time", None, view, inputs=tuple(range(len(inputs))))
    judged = CFG.segments.variables
    assert [marked.values[n] for n in judged] == list(range(len(judged)))
    assert all(marked.values[n] == read.values[n] for n in CFG.update_variables if n not in judged)
