"""A newcomer's audit of a consent refusal as a `segment-changes` subscriber sees it.

The contract: a user whose latest consent says ``personalization: false`` is not profiled,
segmented or triggered on. The refusal's own record (``"cause": "consent"``, every segment
left) carries nothing personalised: it carried the customer's recommendations until qa15's audit.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.helpers import cli_ok

def test_a_refusal_publishes_no_recommendations(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # 300 generated users over 15 days: two refusals by customers who had a list by then.
    cli_ok("generate", "--users", "300", "--days", "15", "--seed", "7", "--out", str(events))
    out = tmp_path / "out"
    cli_ok("replay", str(events), "--out", str(out), "-q")
    refusals = [
        record
        for record in map(orjson.loads, (out / "segment_changes.jsonl").read_bytes().splitlines())
        if record.get("cause") == "consent"
    ]
    assert refusals, "the data set holds no refusal of a customer in a segment"
    assert all(record["segments"] == [] for record in refusals)
    assert [r["user_id"] for r in refusals if r["profile"].get("recommendations")] == []
