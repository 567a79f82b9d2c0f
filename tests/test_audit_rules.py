"""A newcomer's audit of the rule language's errors: a goal's misspelt field is named as such.

A goal condition over a field that does not exist stopped start-up with CEL's bare key,
``... : 'campain'``, after a list of the event's fields that holds ``campaign``: which
name was wrong, and where, was left to guess.
"""

from __future__ import annotations

import pytest

from journeyflow.errors import RuleError
from operators.goals import parse_goal


def test_a_misspelt_event_field_in_a_goal_names_it_and_the_nearest() -> None:
    with pytest.raises(RuleError) as caught:
        parse_goal("trigger 't'", {"when": 'event.campain == "x"'}, payload_sample={})
    message = str(caught.value)
    assert message.startswith("trigger 't' goal: unknown field event.campain in 'event.campain == \"x\"'")
    assert "(did you mean 'campaign'?)" in message


def test_a_payload_field_no_payload_has_is_named() -> None:
    with pytest.raises(RuleError) as caught:
        parse_goal("trigger 't'", {"when": "trigger.payload.campaign == event.campaign"}, payload_sample={"sku": "p1"})
    assert "no field 'campaign' in the sample event or trigger (the payload has sku)" in str(caught.value)


def test_a_guarded_payload_field_is_still_accepted() -> None:
    # The README's pattern: a field only some variants' payloads have, behind has().
    goal = parse_goal(
        "trigger 't'",
        {"when": "has(trigger.payload.campaign) && event.campaign == trigger.payload.campaign"},
        payload_sample={"campaign": "spring-a"},
    )
    assert goal.when is not None
