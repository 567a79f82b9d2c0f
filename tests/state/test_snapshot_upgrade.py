"""Snapshots written before a layout change still resume (state/portable.py, UPGRADES).

``snapshots_v1.pkl`` holds snapshots of a device and six customers written by main at
219ad22 (compiled build), when a user's dedup ids were a dict of the ids' strings, in
both forms that code wrote (portable, and pickle's own as before state/portable.py),
with each user's remembered ids (``seen``). Written by replaying 77 generated lines
(``generator.GeneratorConfig(users=12, days=2, seed=5)``) through the device and
customer steps (tests/state/user_snapshots.py) in main's tree.
"""

from __future__ import annotations

import dataclasses
import pickle
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.step_configs import journey_config
from journeyflow.events import Event
from operators.dedup import DedupState, held_keys, held_times, id_key, is_duplicate
from operators.identity import DeviceConfig, DeviceState
from operators.journey_state import JourneyState, view_of
from operators.profile_events import apply_event
from operators.profile_windows import COUNT_MASK, DAY_MS, DAY_SHIFT, times_of
from operators.profiles import Profile, View, new_profile
from operators.views import to_fields
from operators.rules import load_rules
from state.portable import _digest, rebuild
from state.serde import decode_state, encode_state
from state.upgrades import PROFILE_BEFORE_PACKING
from tests.helpers import event, settings

FIXTURE = pickle.loads((Path(__file__).parent / "snapshots_v1.pkl").read_bytes())
SETTINGS = settings()
JOURNEY = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)


def _journey_of(state: Any) -> JourneyState:
    journey = state.journey if isinstance(state, DeviceState) else state
    assert isinstance(journey, JourneyState)
    return journey


@pytest.mark.parametrize("form", ["portable", "old_form"])
def test_main_s_snapshots_resume_with_their_ids_as_digests(form: str) -> None:
    assert FIXTURE["written_by"].startswith("main 219ad22")
    snapshots: dict[str, bytes] = FIXTURE[form]
    assert any(key.startswith("device/") for key in snapshots) and len(snapshots) == 7
    for key, data in snapshots.items():
        state = decode_state(data, DeviceState if key.startswith("device/") else JourneyState)
        dedup = _journey_of(state).dedup
        seen: dict[str, int] = FIXTURE["seen"][key]
        assert type(dedup) is DedupState
        assert list(held_keys(dedup)) == [id_key(e) for e in seen] and list(held_times(dedup)) == list(seen.values())
        assert all(is_duplicate(dedup, id_key(e)) for e in seen) and not is_duplicate(dedup, id_key("other"))
        # Snapshotted again, the state is in today's layout and reads back the same.
        assert decode_state(encode_state(state), type(state)) == state


def test_a_resumed_customer_drops_a_repeat_of_an_id_remembered_before_the_upgrade() -> None:
    key = "customer/u1"
    logic = JOURNEY.build(FIXTURE["portable"][key])
    event_id, ts_ms = next(iter(FIXTURE["seen"][key].items()))
    doc = event("page_view", user="u1", ts=ts_ms, event_id=event_id)
    repeat = JOURNEY.parser.parse(orjson.dumps(doc), "test:1")
    assert isinstance(repeat, Event)
    before = logic.state.duplicates
    logic.on_item(repeat)
    assert logic.state.duplicates == before + 1


def test_a_resumed_device_snapshots_in_todays_layout() -> None:
    key = next(k for k in FIXTURE["portable"] if k.startswith("device/"))
    device = DeviceConfig(JOURNEY, link_idle_ms=SETTINGS.identity.link_idle_s * 1000).build(FIXTURE["old_form"][key])
    data = device.snapshot()
    assert b"operators.dedup:DedupState:" in data and b"seen" not in data


def test_main_s_segments_resume_as_a_sorted_tuple() -> None:
    # main kept a customer's segments as a frozenset; version 3 keeps a sorted tuple.
    for form in ("portable", "old_form"):
        for key, data in FIXTURE[form].items():
            state = _journey_of(decode_state(data, DeviceState if key.startswith("device/") else JourneyState))
            assert type(state.segments) is tuple and list(state.segments) == sorted(state.segments)
            assert state.version == 3
    assert any(_journey_of(decode_state(d, object)).segments for d in FIXTURE["portable"].values() if d)


def test_a_versioned_upgrade_also_reads_a_snapshot_written_before_fields_were_added() -> None:
    # A snapshot holding fewer fields (the rest added since, with defaults) is still upgraded
    # by its version: here version 1, without today's last field, segments a frozenset.
    fields = dataclasses.fields(JourneyState)
    values = tuple(
        1 if f.name == "version" else "u1" if f.name == "user" else frozenset({"b", "a"}) if f.name == "segments"
        else (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        for f in fields[:-1]
    )
    layout = f"operators.journey_state:JourneyState:{_digest(tuple(f.name for f in fields[:-1]))}"
    state = rebuild(layout, values)
    assert (state.version, state.user, state.segments) == (3, "u1", ("a", "b"))
    assert getattr(state, fields[-1].name) == fields[-1].default


def test_main_s_profiles_resume_with_their_daily_counts_and_product_views_packed() -> None:
    # main kept a profile's daily counts as a dict and each product's view times as a list;
    # pack14 packs both (the two fields renamed). Every customer of the fixture resumes and
    # shows the same row as before: its profile's fields read back through today's readers.
    resumed = 0
    for form in ("portable", "old_form"):
        for key, data in FIXTURE[form].items():
            state = _journey_of(decode_state(data, DeviceState if key.startswith("device/") else JourneyState))
            profile = state.profile
            if profile is None:
                continue
            assert type(profile.day_counts) is array and type(profile.view_times) is dict
            assert sum(packed & COUNT_MASK for packed in profile.day_counts) == profile.events_total
            assert all(type(times) is bytes and times for times in profile.view_times.values())
            resumed += 1
    assert resumed >= 12


def test_a_profile_of_the_former_layout_reads_back_as_the_same_profile() -> None:
    # Today's profile written in the former layout (a dict of daily counts, lists of view
    # times, the former field names) decodes to a profile equal to it, and shows the same row.
    profile = new_profile(0)
    for n, (kind, ts) in enumerate([("product_view", 5), ("product_view", 3 * DAY_MS), ("page_view", 3 * DAY_MS + 1)]):
        product = "p" if n < 2 else None
        apply_event(profile, JOURNEY.profiles, Event(f"e{n}", kind, "u", ts, "t", product_id=product, category="c"))
    apply_event(profile, JOURNEY.profiles, Event("e9", "product_view", "u", 1, "t", product_id="q", category="c"))
    values = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile)}
    values["day_counts"] = {packed >> DAY_SHIFT: packed & COUNT_MASK for packed in profile.day_counts}
    values["view_times"] = {p: times_of(t).tolist() for p, t in profile.view_times.items()}
    assert values["day_counts"] == {0: 2, 3: 2} and values["view_times"] == {"p": [5, 3 * DAY_MS], "q": [1]}
    former = tuple(values.values())
    assert len(former) == len(PROFILE_BEFORE_PACKING)
    read = rebuild(f"operators.profiles:Profile:{_digest(PROFILE_BEFORE_PACKING)}", former)
    assert read == profile
    view = View(read, JOURNEY.profiles, 3 * DAY_MS + 2)
    assert to_fields(view) == to_fields(View(profile, JOURNEY.profiles, 3 * DAY_MS + 2))
    assert to_fields(view)["product_views_24h"] == {"p": 1}


V3 = pickle.loads((Path(__file__).parent / "snapshots_v3.pkl").read_bytes())
"""``snapshots_v3.pkl``: main at 4c57858 (compiled; this branch's start), the same 77 lines:
each held key's snapshot (portable form; dedup ids in two arrays, daily counts a dict, view
times lists), each customer's row as that code showed it and each user's dedup ids and times."""


def test_the_branch_start_s_snapshots_resume_showing_the_same_rows_and_ids() -> None:
    assert V3["written_by"].startswith("main 4c57858")
    rows = 0
    for key, data in V3["portable"].items():
        state: Any = decode_state(data, DeviceState if key.startswith("device/") else JourneyState)
        journey = state.journey if isinstance(state, DeviceState) else state
        if journey is None:
            continue
        keys, times = V3["dedup"][key]
        assert held_keys(journey.dedup).tolist() == keys and held_times(journey.dedup).tolist() == times
        assert all(is_duplicate(journey.dedup, k) for k in keys)
        if key in V3["rows"]:
            assert journey.profile is not None and type(journey.profile.day_counts) is array
            assert to_fields(view_of(journey, JOURNEY, journey.max_ts_ms or 0)) == V3["rows"][key]
            rows += 1
        # Snapshotted again, the state is in today's layout and reads back the same.
        assert decode_state(encode_state(state), type(state)) == state
    assert rows == len(V3["rows"]) >= 10 and any(r["product_views_24h"] for r in V3["rows"].values())
