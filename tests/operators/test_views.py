"""The profile's values in one call (``views.profile_values``) are the registry's getters' values."""

from __future__ import annotations

from pathlib import Path

from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items
from flows.step_configs import journey_config
from journeyflow import generator
from journeyflow.events import Event
from operators.journey_state import view_of
from operators.profiles import DAY_MS
from operators.rules import load_rules
from operators.variables import PROFILE
from operators.views import profile_values
from tests.helpers import settings

SETTINGS = settings()

#: How far after the user's latest event each profile is also read: the windows
#: (7, 30, 90 days, the product window) and the decays move with time alone.
_LATER_MS = (0, 3_600_000, 2 * DAY_MS, 8 * DAY_MS, 31 * DAY_MS, 95 * DAY_MS)


def test_every_value_is_the_registry_getters_value_of_the_same_type_in_its_order(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    generator.generate(generator.GeneratorConfig(users=60, days=40, seed=5), events, tmp_path / "truth.jsonl")
    cfg = journey_config(SETTINGS, load_rules(SETTINGS.rules_path), timers=False)
    parsed = [cfg.parser.parse(line, f"t:{n}") for n, line, _ in read_lines(events)]
    logics: dict = {}
    checked = bought = carted = 0
    for item in replay_items(parsed, ReplayClock.from_settings(SETTINGS), ReplayProgress()):
        if not isinstance(item, Event):
            continue
        logic = logics.setdefault(item.user, cfg.build(None))
        logic.on_item(item)
        state = logic.state
        if state.profile is None or state.max_ts_ms is None:
            continue
        for later in _LATER_MS:
            view = view_of(state, cfg, state.max_ts_ms + later)
            expected = {name: entry.get(view) for name, entry in PROFILE.items()}
            got = profile_values(view)
            assert list(got) == list(expected)
            for name, value in expected.items():
                # == alone would take 1 for 1.0 and True for 1: CEL and the JSON tell them apart.
                assert type(got[name]) is type(value) and got[name] == value, (name, got[name], value)
            checked += 1
        bought += state.profile.purchases_total > 0
        carted += bool(state.profile.cart)
    # Not only empty profiles: buyers, carts, and every window's edge crossed.
    assert checked > 5_000 and bought > 100 and carted > 100
