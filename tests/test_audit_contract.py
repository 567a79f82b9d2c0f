"""A newcomer's audit: every value a replay writes in a documented enumeration is documented.

docs/contract.md lists a segment change's ``cause`` values; a consumer that switches on them
must not meet one it was never told about (``merge`` was missing).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.helpers import ROOT, cli_ok

def _documented_causes() -> set[str]:
    text = (ROOT / "docs" / "contract.md").read_text()
    item = re.search(r"^- `cause`: (.*?)(?=^- )", text, re.S | re.M)
    assert item is not None, "docs/contract.md lists no cause values"
    return set(re.findall(r"`([a-z_]+)`", item.group(1)))


def test_every_cause_of_a_replay_is_in_the_contract(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # 150 generated users (about 4,000 lines) hold logins that change the customer's segments.
    cli_ok("generate", "--users", "150", "--days", "10", "--seed", "3", "--out", str(events))
    out = tmp_path / "out"
    cli_ok("replay", str(events), "--out", str(out), "-q")
    records = [orjson.loads(line) for line in (out / "segment_changes.jsonl").read_bytes().splitlines()]
    causes = {r["cause"] for r in records if r["kind"] == "segment_change"}
    assert {"event", "merge"} <= causes  # what this data set holds
    assert causes <= _documented_causes()
