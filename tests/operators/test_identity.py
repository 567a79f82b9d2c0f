"""The device step and the customer step's ordering, driven without a dataflow."""

from __future__ import annotations

from typing import Any

import orjson
from bytewax.operators import StatefulLogic

from flows.step_configs import journey_config
from journeyflow.events import Event
from journeyflow.records import IdentityMerge
from journeyflow.step_records import Expect, Finish, Forward, Handoff, Tick, UserUpdate
from operators.identity import DeviceConfig, DeviceLogic, to_device
from operators.in_order import _InOrder
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
JOURNEY = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
DAY_MS = 86_400_000


def _event(kind: str, minutes: float, *, user: str | None = None, device: str | None = "a1", **props: Any) -> Event:
    doc = event(kind, user=user or "x", ts=at(minutes), **props)
    if user is None:
        del doc["user_id"]
    if device is not None:
        doc["anonymous_id"] = device
    parsed = JOURNEY.parser.parse(orjson.dumps(doc), "test:1")
    assert isinstance(parsed, Event), parsed
    return parsed


def _device(link_idle_ms: int = 90 * DAY_MS) -> DeviceLogic:
    return DeviceConfig(JOURNEY, link_idle_ms=link_idle_ms).build(None)


def test_an_unlinked_device_runs_its_own_journey() -> None:
    device = _device()
    out, discard = device.on_item(_event("product_view", 0))
    assert discard is StatefulLogic.RETAIN
    assert not any(isinstance(o, Forward) for o in out)
    assert device.journey is not None and device.journey.state.profile is not None


def test_a_login_hands_the_state_over_and_links_the_device() -> None:
    device = _device()
    device.on_item(_event("product_view", 0))
    login = _event("login", 1, user="u1")
    out, discard = device.on_item(login)
    assert discard is StatefulLogic.RETAIN
    merges = [o for o in out if isinstance(o, IdentityMerge)]
    assert merges == [IdentityMerge("u1", "a1", login.ts_ms, login.event_id)]
    [forward] = [o for o in out if isinstance(o, Forward)]
    assert forward.user == "u1" and isinstance(forward.item, Handoff)
    assert forward.item.event == login and forward.item.state.profile.events_total == 1
    # The steps after this one forget the device.
    assert [o.kind for o in out if isinstance(o, UserUpdate)] == ["merge"]
    assert device.state.linked_to == "u1" and device.journey is None


def test_a_linked_devices_events_go_to_its_customer() -> None:
    device = _device()
    device.on_item(_event("login", 0, user="u1"))
    view = _event("product_view", 5)
    out, _ = device.on_item(view)
    assert out == [Forward("u1", view._replace(user="u1"))]
    # A second login to the same customer is only forwarded; another customer re-links.
    again = _event("login", 6, user="u1")
    assert device.on_item(again)[0] == [Forward("u1", again)]
    other = _event("login", 7, user="u2")
    out, _ = device.on_item(other)
    assert IdentityMerge("u2", "a1", other.ts_ms, other.event_id) in out
    assert Forward("u2", Handoff("a1", None, other)) in out


def test_a_silent_link_is_forgotten() -> None:
    device = _device(link_idle_ms=DAY_MS)
    device.on_item(_event("login", 0, user="u1"))
    assert device.on_item(Tick(_event("page_view", 60).ts_ms, "a1", device=True)) == ([], StatefulLogic.RETAIN)
    out, _ = device.on_item(_event("page_view", 2 * 24 * 60))
    assert not any(isinstance(o, Forward) for o in out)
    assert device.state.linked_to is None and device.journey is not None


def test_the_link_survives_a_snapshot() -> None:
    cfg = DeviceConfig(JOURNEY, link_idle_ms=DAY_MS)
    device = cfg.build(None)
    device.on_item(_event("login", 0, user="u1"))
    restored = cfg.build(device.snapshot())
    view = _event("page_view", 3)
    assert restored.on_item(view)[0] == [Forward("u1", view._replace(user="u1"))]


class _Recorder(StatefulLogic[Any, Any, bytes]):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_item(self, value: Any) -> tuple[list[Any], bool]:
        self.seen.append(value)
        return [value], StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return b""


def test_items_behind_a_placeholder_wait_for_what_it_stands_for() -> None:
    recorder = _Recorder()
    in_order = _InOrder(lambda resume: recorder, None, placeholders=True)
    login = _event("login", 1, user="u1")._replace(seq=2)
    handoff = Handoff("a1", None, login)
    first = _event("page_view", 0, user="u1", device=None)._replace(seq=1)
    later = _event("page_view", 2, user="u1", device=None)._replace(seq=3)
    # The customer's own items (and the placeholder) come first, out of order.
    out, discard = in_order.on_batch([later, Expect("u1", 2), first])
    assert out == [first] and discard is False
    out, _ = in_order.on_batch([handoff])
    assert out == [handoff, later]
    assert recorder.seen == [first, handoff, later]


def test_an_item_before_its_placeholder_waits_for_it() -> None:
    recorder = _Recorder()
    in_order = _InOrder(lambda resume: recorder, None, placeholders=True)
    handoff = Handoff("a1", None, _event("login", 1, user="u1")._replace(seq=2))
    assert in_order.on_batch([handoff])[0] == []
    assert in_order.on_batch([Expect("u1", 2)])[0] == [handoff]


def test_live_applies_items_as_they_arrive() -> None:
    # Sorting what happens to arrive together would tie the outcome to where batches split.
    recorder = _Recorder()
    in_order = _InOrder(lambda resume: recorder, None, placeholders=False)
    late, early = (_event("page_view", m, user="u1") for m in (5, 1))
    assert in_order.on_batch([late, early])[0] == [late, early]


def test_live_applies_a_handoff_before_the_customers_later_event_that_arrived_with_it() -> None:
    recorder = _Recorder()
    in_order = _InOrder(lambda resume: recorder, None, placeholders=False)
    handoff = Handoff("a1", None, _event("login", 3, user="u1"))
    view = _event("page_view", 4, user="u1", device=None)
    # bytewax hands over the customer's own items first, then the device path's.
    assert in_order.on_batch([view, handoff])[0] == [handoff, view]


def test_a_replay_lets_go_of_a_users_logic_at_its_end_of_input() -> None:
    # bytewax frees discarded keys only after every key's end of input: the replay's
    # wrapper drops the logic itself, so the peak is not all state plus all final updates.
    in_order = _InOrder(JOURNEY.build, None, placeholders=True)
    view = _event("page_view", 0, user="u1", device=None)._replace(seq=1)
    in_order.on_batch([view])
    out, discard = in_order.on_eof()
    assert discard is True and in_order.logic is None
    assert any(isinstance(r, UserUpdate) and r.kind == "final" for r in out)
    # Live (snapshots follow the end of input), the logic keeps its state.
    live = _InOrder(JOURNEY.build, None, placeholders=False)
    live.on_batch([_event("page_view", 0, user="u1", device=None)])
    out, discard = live.on_eof()
    assert discard is False and live.logic is not None


def test_a_replay_lets_go_of_a_visitors_journey_at_its_end_of_input() -> None:
    for release in (True, False):
        device = DeviceConfig(JOURNEY, link_idle_ms=90 * DAY_MS, release_at_eof=release).build(None)
        device.on_item(_event("page_view", 0))
        out, discard = device.on_eof()
        assert any(isinstance(r, UserUpdate) and r.kind == "final" for r in out)
        assert (device.journey is None and device.state.journey is None) is release and discard is release


def _final_rows(out: list[Any]) -> list[Any]:
    return [r for r in out if isinstance(r, UserUpdate) and r.kind == "final"]


def test_a_finish_does_for_a_customer_what_its_end_of_input_does_then_lets_it_go() -> None:
    items = [_event("page_view", m, user="u1", device=None)._replace(seq=m + 1) for m in (0, 3)]
    by_eof = _InOrder(JOURNEY.build, None, placeholders=True)
    by_eof.on_batch(list(items))
    eof_out, _ = by_eof.on_eof()
    by_finish = _InOrder(JOURNEY.build, None, placeholders=True)
    by_finish.on_batch(list(items))
    out, discard = by_finish.on_batch([Finish("u1", 9)])
    assert discard is True and by_finish.logic is None
    assert len(_final_rows(list(out))) == 1
    assert [repr(r) for r in out] == [repr(r) for r in eof_out]
    # A key with nothing left (discarded, then only ticked) finishes with nothing to say.
    fresh = _InOrder(JOURNEY.build, None, placeholders=True)
    assert fresh.on_batch([Finish("u2", 1)]) == ([], True)


def test_a_finish_behind_a_placeholder_waits_for_what_it_stands_for() -> None:
    recorder = _Recorder()
    in_order = _InOrder(lambda resume: recorder, None, placeholders=True)
    handoff = Handoff("a1", None, _event("login", 1, user="u1")._replace(seq=2))
    first = _event("page_view", 0, user="u1", device=None)._replace(seq=1)
    out, discard = in_order.on_batch([first, Expect("u1", 2), Finish("u1", 3)])
    assert out == [first] and discard is False and recorder.seen == [first]
    out, discard = in_order.on_batch([handoff])
    # The handoff, then the finish: the recorder's end of input says nothing, and the key goes.
    assert out == [handoff] and discard is True and in_order.logic is None
    assert in_order.held is None and in_order.early == {}


def test_a_finish_ends_a_devices_journey_or_link_and_lets_the_key_go() -> None:
    visitor = DeviceConfig(JOURNEY, link_idle_ms=90 * DAY_MS, release_at_eof=True).build(None)
    visitor.on_item(_event("page_view", 0))
    twin = DeviceConfig(JOURNEY, link_idle_ms=90 * DAY_MS, release_at_eof=True).build(None)
    twin.on_item(_event("page_view", 0))
    out, discard = visitor.on_item(Finish("a1", 5, True))
    assert discard is True and visitor.journey is None
    assert [repr(r) for r in out] == [repr(r) for r in twin.on_eof()[0]]
    assert len(_final_rows(list(out))) == 1
    linked = DeviceConfig(JOURNEY, link_idle_ms=90 * DAY_MS, release_at_eof=True).build(None)
    linked.on_item(_event("login", 1, user="u1"))
    assert linked.on_item(Finish("a1", 5, True)) == ([], True)
    assert to_device(Finish("a1", 5, True)) and not to_device(Finish("u1", 5))
