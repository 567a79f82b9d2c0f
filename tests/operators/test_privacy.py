"""The consent and erasure part: what a refusal, an erasure and a release keep."""

from __future__ import annotations

import orjson

from flows.step_configs import journey_config
from journeyflow.step_records import Tally, UserUpdate
from operators import privacy, profiles
from operators.journey_state import JourneyState
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
CFG = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)


def _parse(doc: dict) -> object:
    return CFG.parser.parse(orjson.dumps(doc), "t:1")


def _known_user() -> JourneyState:
    state = JourneyState(user="u1", max_ts_ms=0, devices=("a1", "a2"), processed=3)
    state.profile = profiles.new_profile(0)
    state.segments = ("new_visitor",)
    return state


def test_a_refusal_keeps_the_refusal_the_links_and_reports_the_counts() -> None:
    state = _known_user()
    out: list = []
    refusal = _parse(event("consent", ts=at(1), context={"consent": {"personalization": False}}))
    kept = privacy.on_consent(state, CFG, refusal, out)
    assert kept is not None and kept.opted_out and kept.profile is None and kept.devices == ("a1", "a2")
    (update,) = [o for o in out if isinstance(o, UserUpdate)]
    assert update.kind == "opt_out" and update.segments == ("new_visitor",)
    assert [t.processed for t in out if isinstance(t, Tally)] == [3]
    # A second refusal changes nothing; a consent lifts the refusal in place.
    assert privacy.on_consent(kept, CFG, refusal, out) is None
    consent = _parse(event("consent", ts=at(2), context={"consent": {"personalization": True}}))
    assert privacy.on_consent(kept, CFG, consent, out) is None and not kept.opted_out


def test_an_erasure_names_the_devices_and_keeps_their_hashes_only() -> None:
    state = _known_user()
    out: list = []
    kept = privacy.forget(state, CFG, _parse(event("forget", ts=at(1))), out)
    (update,) = [o for o in out if isinstance(o, UserUpdate)]
    assert update.kind == "erase" and update.aliases == ("a1", "a2")
    assert kept.profile is None and kept.devices == ()
    assert kept.erased_devices == tuple(CFG.parser.hash_personal(d) for d in ("a1", "a2"))


def test_an_erased_device_is_skipped_until_it_logs_in_again() -> None:
    state = JourneyState(user="u1", erased_devices=(CFG.parser.hash_personal("a1"),))
    anonymous = _parse(event("page_view", user=None, ts=at(1), anonymous_id="a1"))
    assert privacy.skips_erased_device(state, CFG, anonymous) and state.skipped == 1
    other = _parse(event("page_view", user=None, ts=at(1), anonymous_id="a9"))
    assert not privacy.skips_erased_device(state, CFG, other)
    login = _parse(event("login", ts=at(2), anonymous_id="a1"))
    assert not privacy.skips_erased_device(state, CFG, login) and state.erased_devices == ()


def test_a_release_keeps_a_refusal_and_erased_devices_only() -> None:
    state = _known_user()
    state.opted_out, state.erased_devices = True, ("h1",)
    kept = privacy.released(state)
    assert (kept.user, kept.opted_out, kept.erased_devices, kept.profile, kept.devices) == ("u1", True, ("h1",), None, ())
