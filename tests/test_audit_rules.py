"""A newcomer's audit of the rule language's errors: a goal's misspelt field is named as such.

A goal condition over a field that does not exist stopped start-up with CEL's bare key,
``... : 'campain'``, after a list of the event's fields that holds ``campaign``: which
name was wrong, and where, was left to guess.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyflow.errors import RuleError
from operators.goals import parse_goal
from tests.helpers import run_cli



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


# -- the learned segments' names: cluster:0 .. cluster:k-1 -------------------------------------
# A rule segment named cluster:1 mixed its members with the learned cluster's; a trigger on
# cluster:abc or on a cluster k does not make started and never fired, without a word.


def test_a_rule_segment_may_not_take_a_learned_clusters_name() -> None:
    from operators.rules import parse_rules

    with pytest.raises(RuleError, match=r"^segment 'cluster:1': names cluster:N are the learned clusters'"):
        parse_rules({"segments": {"cluster:1": {"when": "true"}}})


def test_a_segment_entry_trigger_on_a_malformed_cluster_is_refused() -> None:
    from operators.rules import parse_rules

    with pytest.raises(RuleError, match=r"^trigger 't': segment must name a segment .* or a learned cluster:N; got 'cluster:abc'"):
        parse_rules({"triggers": {"t": {"on": "segment_entry", "segment": "cluster:abc"}}})


def test_a_segment_entry_trigger_on_a_cluster_beyond_k_stops_the_replay(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[triggers.t]\non = "segment_entry"\nsegment = "cluster:6"\n')
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = run_cli(
        "replay", str(events), "--out", str(tmp_path / "out"),
        env={"JOURNEYFLOW_SEGMENTS_RULES_FILE": str(rules), "JOURNEYFLOW_CLUSTERS_K": "6"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "journeyflow: error: trigger 't': segment 'cluster:6' is no cluster: [clusters] k = 6 learns cluster:0 .. cluster:5"
    ]


def test_a_segment_entry_trigger_on_a_learned_cluster_is_accepted() -> None:
    from operators.rules import check_clusters, parse_rules

    rules = parse_rules({"triggers": {"t": {"on": "segment_entry", "segment": "cluster:5"}}})
    check_clusters(rules, 6)
    with pytest.raises(RuleError):
        check_clusters(rules, 5)


@pytest.mark.parametrize(
    ("rules", "start"),
    [
        ('[segments.big]\nwhen = "monetary_90d > > 500.0"\n', "journeyflow: error: segment 'big': does not compile: "),
        (
            '[triggers.t]\non = "event"\ngoal = { when = "event.revenue > > 1.0" }\n',
            "journeyflow: error: trigger 't' goal: does not compile: ",
        ),
    ],
)
def test_a_syntax_error_is_one_line_with_its_column(tmp_path: Path, rules: str, start: str) -> None:
    # CEL's message went on with its caret diagram: three lines on stderr.
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = run_cli("replay", str(events), "--out", str(tmp_path / "out"), env={"JOURNEYFLOW_SEGMENTS_RULES_FILE": str(path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(start) and "Syntax error" in lines[0] and ":1:" in lines[0]


def test_a_segment_entry_trigger_without_any_segment_says_none_are_defined_and_a_near_name_is_suggested() -> None:
    from operators.rules import parse_rules

    with pytest.raises(RuleError, match=r"segment \(none defined\) or a learned cluster:N; got 'vip' instead$"):
        parse_rules({"triggers": {"t": {"on": "segment_entry", "segment": "vip"}}})
    with pytest.raises(RuleError, match=r"got 'vip' instead \(did you mean 'vips'\?\)$"):
        parse_rules({"segments": {"vips": {"when": "true"}}, "triggers": {"t": {"on": "segment_entry", "segment": "vip"}}})


def test_a_misspelt_event_type_lists_the_types_and_the_nearest() -> None:
    from operators.rules import parse_rules

    with pytest.raises(RuleError) as caught:
        parse_rules({"triggers": {"t": {"on": "event", "when": "true", "event_types": ["purchase", "add_to_crat"]}}})
    message = str(caught.value)
    assert "page_view" in message and "add_to_cart" in message  # the valid types are listed
    assert message.endswith("(did you mean 'add_to_cart'?)")


def test_a_map_read_where_another_context_offers_it_says_where_it_is_offered() -> None:
    from operators.rules import parse_rules

    with pytest.raises(RuleError, match=r"unknown variable\(s\) event \(only in on = 'event' triggers; this rule reads session\)"):
        parse_rules({"triggers": {"t": {"on": "session_close", "when": "event.price > 1.0"}}})
    with pytest.raises(RuleError, match=r"unknown variable\(s\) session \(only in on = 'session_close' triggers\)"):
        parse_rules({"segments": {"s": {"when": "session.events > 1"}}})
