"""The former layouts of the per-user state classes that snapshots may still hold.

:mod:`state.portable` reads a snapshot of a class's former layout (in either of its
forms) through the matching :class:`Upgrade`'s ``convert``, given the former fields'
values by name, so a live worker's snapshots written before a layout change still resume.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["UPGRADES", "Upgrade", "find_upgrade"]


@dataclass(frozen=True)
class Upgrade:
    """How to read a snapshot of a class's former layout."""

    cls: str
    """The class, ``module:Qualname``."""
    fields: tuple[str, ...]
    """The former layout's field names, in declared order (an upgrade by version: none,
    the class's own names, or the first of them a snapshot written before others holds)."""
    convert: str
    """``module:function`` taking the former fields' values by name; returns the instance now."""
    below: int = 0
    """When the layout is today's (same field names, a field's type changed): the
    upgrade reads the snapshots whose ``version`` field is below this; 0: by layout."""


#: A profile's fields before its daily counts (``daily_events``) and product views
#: (``product_views``) were packed (pack14 branch), in declared order.
PROFILE_BEFORE_PACKING: tuple[str, ...] = (
    "first_seen_ms", "last_seen_ms", "events_total", "sessions_closed", "session_ms_total",
    "sessions_converted", "purchases_total", "revenue_total", "last_purchase_ms", "purchases",
    "session_starts", "daily_events", "engagement_raw", "engagement_ms", "affinity", "affinity_ms",
    "product_views", "peak_views", "pruned_ms", "bought", "cart", "cart_changed_ms", "cart_adds_total",
    "searches_total", "email_clicks", "marketing_consent", "personal",
)  # fmt: skip

#: Former layouts still read (mem5 branch): a user's dedup ids are 64-bit digests in
#: packed arrays, not a dict of the ids' strings (version 2); a user's segments are a
#: sorted tuple, not a frozenset (version 3). Since pack14, a profile's daily counts
#: and product views are packed (by layout: the two fields were renamed), and a user's
#: dedup digests and times are one array, not two.
UPGRADES: tuple[Upgrade, ...] = (
    Upgrade("operators.dedup:DedupState", ("seen",), "operators.dedup:from_seen"),
    Upgrade("operators.dedup:DedupState", ("keys", "times", "index"), "operators.dedup:from_pairs"),
    Upgrade("operators.journey_state:JourneyState", (), "operators.journey_state:upgrade_version_2", below=3),
    Upgrade("operators.profiles:Profile", PROFILE_BEFORE_PACKING, "operators.profiles:from_former"),
)

_Converter = Callable[[dict[str, Any]], Any]


def find_upgrade(cls: type, matches: Callable[[Upgrade], bool]) -> tuple[tuple[str, ...], _Converter, int] | None:
    """Return the former field names, the converter and ``below`` of ``cls``'s upgrade that ``matches``, if any."""
    name = f"{cls.__module__}:{cls.__qualname__}"
    for upgrade in UPGRADES:
        if upgrade.cls == name and matches(upgrade):
            module_name, function = upgrade.convert.split(":")
            return upgrade.fields, getattr(importlib.import_module(module_name), function), upgrade.below
    return None
