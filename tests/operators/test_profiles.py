"""Profile variables: the types rules see, on an empty profile and a busy one."""

from __future__ import annotations

import pytest

from journeyflow.events import Event, Item
from operators.profile_events import apply_event, close_session
from operators.profiles import ProfileConfig, View, new_profile
from operators.variables import PROFILE

DAY = 86_400_000
CFG = ProfileConfig(engagement_half_life_ms=7 * DAY, affinity_half_life_ms=30 * DAY, product_window_ms=DAY)


def _busy() -> View:
    profile = new_profile(0)
    events = [
        Event("e1", "product_view", "u", 1000, "t", product_id="p", category="c", price=9.5),
        Event("e2", "add_to_cart", "u", 2000, "t", product_id="p", category="c", price=9.5, quantity=2),
        Event("e3", "purchase", "u", 3000, "t", order_id="o", revenue=19.0, items=(Item("q", "c", 19.0, 1),)),
        Event("e4", "email_click", "u", 4000, "t", campaign="x"),
    ]
    for event in events:
        apply_event(profile, CFG, event)
    close_session(profile, CFG, 1000, 4000, converted=True)
    return View(profile, CFG, 5 * DAY, open_sessions=1)


@pytest.mark.parametrize("view", [View(new_profile(0), CFG, DAY), _busy()], ids=["empty", "busy"])
def test_every_variable_has_the_type_rules_are_checked_with(view: View) -> None:
    # Rules are checked at start-up on the sample values; CEL does not mix
    # ints and doubles, so a variable whose type changes with the data would
    # pass the check and fail at run time.
    for name, variable in PROFILE.items():
        assert type(variable.get(view)) is type(variable.sample), name
