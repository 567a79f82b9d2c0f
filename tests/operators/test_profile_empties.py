"""A profile's rarely filled fields share one empty dict and list until written (operators.profiles)."""

from __future__ import annotations

from pathlib import Path

from journeyflow.events import Event, Item
from journeyflow.generator import GeneratorConfig, generate
from operators.merge import merge_profile
from operators.profile_events import apply_event, close_session
from operators.profiles import NO_DAYS, NO_ENTRIES, NO_ITEMS, Profile, ProfileConfig, new_profile, prune
from tests.helpers import replay, settings

DAY = 86_400_000
CFG = ProfileConfig(engagement_half_life_ms=7 * DAY, affinity_half_life_ms=30 * DAY, product_window_ms=DAY)
RARE = ("purchases", "session_starts", "day_counts", "affinity", "view_times", "bought", "cart", "personal")
SHARED = (NO_DAYS, NO_ENTRIES, NO_ITEMS)


def _shared(profile: Profile) -> set[str]:
    return {name for name in RARE if any(getattr(profile, name) is empty for empty in SHARED)}


def _assert_untouched() -> None:
    assert NO_ENTRIES == {}
    assert NO_ITEMS == []
    assert len(NO_DAYS) == 0


def test_a_new_profile_holds_none_of_its_rare_containers() -> None:
    assert _shared(new_profile(0)) == set(RARE)


def test_each_writer_makes_the_profile_its_own_container_first() -> None:
    profile, other = new_profile(0), new_profile(0)
    events = [
        Event("e1", "product_view", "u", 1000, "t", product_id="p", category="c", price=9.5),
        Event("e2", "add_to_cart", "u", 2000, "t", product_id="p", category="c", price=9.5, quantity=2),
        Event("e3", "identify", "u", 2500, "t", personal=(("email", "h1"),)),
        Event("e4", "purchase", "u", 3000, "t", order_id="o", revenue=19.0, items=(Item("q", "c", 19.0, 1),)),
    ]
    for event in events:
        apply_event(profile, CFG, event)
    close_session(profile, CFG, 1000, 3000, converted=True)
    _assert_untouched()
    assert _shared(profile) == set()
    assert profile.cart == {"p": (9.5, 2)} and profile.bought == {"q": 3000} and profile.personal == {"email": "h1"}
    assert profile.purchases == [(3000, 19.0)] and profile.session_starts == [1000] and set(profile.view_times) == {"p"}
    assert _shared(other) == set(RARE)  # a second profile still shares them


def test_an_emptied_cart_and_windows_go_back_to_the_shared_empties() -> None:
    profile = new_profile(0)
    apply_event(profile, CFG, Event("e1", "add_to_cart", "u", 1000, "t", product_id="p", price=2.0, quantity=1))
    apply_event(profile, CFG, Event("e2", "remove_from_cart", "u", 2000, "t", product_id="p", quantity=1))
    assert profile.cart is NO_ENTRIES
    apply_event(profile, CFG, Event("e3", "product_view", "u", 3000, "t", product_id="p", category="c"))
    apply_event(profile, CFG, Event("e4", "purchase", "u", 4000, "t", order_id="o", revenue=5.0, items=(Item("p", "c", 5.0, 1),)))
    close_session(profile, CFG, 1000, 4000, converted=True)
    prune(profile, CFG, 200 * DAY)
    assert _shared(profile) == set(RARE) - {"affinity"}  # categories decay, they are not dropped
    _assert_untouched()


def test_a_merge_adds_into_its_own_containers() -> None:
    into, device = new_profile(0), new_profile(0)
    apply_event(device, CFG, Event("e1", "add_to_cart", "u", 1000, "t", product_id="p", category="c", price=2.0, quantity=1))
    apply_event(device, CFG, Event("e2", "product_view", "u", 1500, "t", product_id="p", category="c"))
    merge_profile(into, device, CFG)
    _assert_untouched()
    assert into.cart == {"p": (2.0, 1)} and set(into.view_times) == {"p"} and set(into.affinity) == {"c"}
    assert _shared(into) == {"purchases", "session_starts", "bought", "personal"}


def test_a_replay_with_every_kind_of_event_leaves_the_shared_empties_empty(tmp_path: Path) -> None:
    config = GeneratorConfig(
        users=120, days=8, seed=13, anonymous_share=0.4, opt_out_share=0.2, forget_share=0.1, out_of_order_share=0.05
    )
    source = tmp_path / "events.jsonl"
    generate(config, source)
    summary = replay([source], tmp_path / "out", settings(), workers=1, show_progress=False)
    assert summary  # the replay ran
    assert (tmp_path / "out" / "profiles.jsonl").stat().st_size > 0
    _assert_untouched()
