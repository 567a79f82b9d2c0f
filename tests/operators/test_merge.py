"""Merging a device's profile into its customer's gives what one history of both would."""

from __future__ import annotations

import math
import random

import orjson

from flows.step_configs import journey_config
from journeyflow.events import Event
from operators import profile_events, profiles
from operators.merge import merge_profile
from operators.profiles import Profile
from operators.rules import load_rules
from tests.helpers import at, event, settings

SETTINGS = settings()
JOURNEY = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
CFG = JOURNEY.profiles


def _events(seed: int, user: str, count: int) -> list[Event]:
    rng = random.Random(seed)
    kinds = ["page_view", "product_view", "product_view", "add_to_cart", "search", "purchase"]
    found = []
    for _ in range(count):
        kind = rng.choice(kinds)
        props = {}
        if kind in ("product_view", "add_to_cart"):
            props = {"product_id": f"p{rng.randrange(4)}", "category": rng.choice(["shoes", "coats", "bags"])}
        doc = event(kind, user=user, ts=at(rng.randrange(3 * 24 * 60)), **props)
        parsed = JOURNEY.parser.parse(orjson.dumps(doc), "test:1")
        assert isinstance(parsed, Event)
        found.append(parsed)
    return sorted(found, key=lambda e: e.ts_ms)


def _profile(events: list[Event]) -> Profile:
    profile = profiles.new_profile(events[0].ts_ms)
    for e in events:
        profile_events.apply_event(profile, CFG, e)
    return profile


def _decayed(value: float, as_of_ms: int, at_ms: int, half_life_ms: int) -> float:
    return value * math.pow(0.5, (at_ms - as_of_ms) / half_life_ms)


def test_a_merged_profile_equals_the_profile_of_both_histories() -> None:
    for seed in range(5):
        device, customer = _events(seed, "a1", 15), _events(seed + 100, "u1", 15)
        merged = _profile(customer)
        merge_profile(merged, _profile(device), CFG)
        whole = _profile(sorted(device + customer, key=lambda e: e.ts_ms))
        # The peak of product views is a running upper bound made exact by a prune.
        for profile in (merged, whole):
            profiles.prune(profile, CFG, whole.last_seen_ms)
        for name in (
            "first_seen_ms", "last_seen_ms", "events_total", "purchases_total", "last_purchase_ms",
            "purchases", "day_counts", "view_times", "peak_views", "bought", "cart_adds_total",
            "searches_total",
        ):
            assert getattr(merged, name) == getattr(whole, name), name
        assert math.isclose(merged.revenue_total, whole.revenue_total)
        now = whole.last_seen_ms
        hl = CFG.engagement_half_life_ms
        assert math.isclose(
            _decayed(merged.engagement_raw, merged.engagement_ms, now, hl),
            _decayed(whole.engagement_raw, whole.engagement_ms, now, hl),
        )
        for category, score in whole.affinity.items():
            ahl = CFG.affinity_half_life_ms
            assert math.isclose(
                _decayed(merged.affinity[category], merged.affinity_ms, now, ahl),
                _decayed(score, whole.affinity_ms, now, ahl),
            ), category
