"""The audience step builds :class:`SegmentChange` positionally: its field order is part of that call.

``operators/audience.py`` passes nine arguments by position (matching keywords cost more
than the rest of the call, since the class runs interpreted). Reordering or inserting a
field of ``SegmentChange`` would still type-check wherever two neighbours share a type
(``entered``, ``exited`` and ``segments`` are all tuples of strings) and silently publish
one in the other's place. These tests give every field a value no other field has and read
each back from the record the step really publishes.
"""

from __future__ import annotations

import inspect

import orjson

from flows.step_configs import audience_config
from journeyflow.records import SNAPSHOT_FIELDS, SegmentChange
from journeyflow.step_records import UserUpdate
from operators.rules import load_rules
from tests.helpers import settings

CFG = audience_config(load_rules(settings().rules_path))
DAY = 86_400_000


def _change(update: UserUpdate, before: tuple[str, ...]) -> SegmentChange:
    step = CFG.build(None)
    step.on_item(UserUpdate(update.user_id, update.ts_ms - DAY, "update", "event", "e-before", before, {}))
    out, _ = step.on_item(update)
    changes = [record for record in out if isinstance(record, SegmentChange)]
    assert len(changes) == 1
    return changes[0]


def test_the_published_change_holds_each_value_in_its_own_field() -> None:
    values = {"purchases_30d": 7, "recency_days": 1.5, "sessions_30d": 9}
    update = UserUpdate("u-order", 5 * DAY, "update", "session_close", "e-cause", ("frequent_browser", "loyal"), values)
    change = _change(update, before=("new_visitor", "frequent_browser"))
    assert change.user_id == "u-order"
    assert change.ts_ms == 5 * DAY
    assert change.entered == ("loyal",)
    assert change.exited == ("new_visitor",)
    assert change.segments == ("frequent_browser", "loyal")
    assert change.cause_event_id == "e-cause"
    assert change.profile == values
    assert change.cause == "session_close"
    # The snapshot, then what the changed segments' rules read (loyal: purchases_30d; new_visitor:
    # sessions_total, purchases_total), each once.
    assert change.fields[: len(SNAPSHOT_FIELDS)] == SNAPSHOT_FIELDS
    assert set(change.fields[len(SNAPSHOT_FIELDS):]) == {"purchases_30d", "sessions_total", "purchases_total"}
    record = orjson.loads(change.to_json())
    assert record["entered"] == ["loyal"] and record["exited"] == ["new_visitor"]
    assert record["segments"] == ["frequent_browser", "loyal"]
    assert record["cause"] == "session_close" and record["cause_event_id"] == "e-cause"
    assert record["profile"]["purchases_30d"] == 7 and record["profile"]["recency_days"] == 1.5


def test_the_positional_order_is_the_slots_order() -> None:
    # The order audience.py passes; a new field goes last, with a default, or that call changes too.
    order = ("user_id", "ts_ms", "entered", "exited", "segments", "cause_event_id", "profile", "cause", "fields")
    assert tuple(inspect.signature(SegmentChange).parameters) == order
    assert SegmentChange.__slots__ == order
