"""The personas of simulated users and the persona mixes a data set can draw from.

Part of the generator (:mod:`journeyflow.generator`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

__all__ = ["MIXES", "PERSONAS", "PERSONA_CUM", "Persona", "persona_mix"]


@dataclass(frozen=True, slots=True)
class Persona:
    """Behaviour of one persona: rates are per user and day, chances per session or click."""

    name: str
    share: float
    sessions_per_day: float
    browse_events: float  # mean browsing events after the landing page
    page_weight: float  # chance a click is a page view
    product_weight: float  # chance a click is a product view; the rest are searches
    buy_intent: float  # chance a session ends in a purchase
    add_to_cart: float  # chance a product view (without buy intent) goes into the cart
    checkout: float  # chance a session without buy intent still starts the checkout
    remove: float  # chance a click removes a cart line again
    price: str  # "cheap", "any" or "premium"
    email: float  # chance a session starts from an email campaign
    pos: float  # chance a session is an in-store purchase
    lapse: float  # chance to stay away for the whole horizon
    gap_power: float  # skews the time between clicks towards 10 s; higher is quicker


PERSONAS = (
    Persona("loyal_buyer", 0.15, 0.35, 5.0, 0.25, 0.6, 0.45, 0.05, 0.0, 0.02, "premium", 0.05, 0.1, 0.03, 2.0),
    Persona("browser", 0.25, 0.3, 11.0, 0.45, 0.47, 0.01, 0.01, 0.0, 0.01, "any", 0.03, 0.0, 0.1, 3.0),
    Persona("cart_abandoner", 0.15, 0.23, 5.0, 0.15, 0.7, 0.03, 0.5, 0.4, 0.06, "any", 0.05, 0.0, 0.12, 2.0),
    Persona("bargain_hunter", 0.15, 0.25, 2.5, 0.1, 0.4, 0.15, 0.04, 0.0, 0.02, "cheap", 0.6, 0.0, 0.12, 1.5),
    Persona("churner", 0.15, 0.45, 5.0, 0.3, 0.55, 0.2, 0.05, 0.05, 0.02, "any", 0.05, 0.0, 1.0, 2.0),
    Persona("new_visitor", 0.15, 0.12, 2.0, 0.55, 0.4, 0.03, 0.03, 0.0, 0.01, "any", 0.0, 0.0, 0.45, 2.0),
)
PERSONA_CUM = tuple(itertools.accumulate(p.share for p in PERSONAS))

#: Other populations than the default, to judge models on data they were not
#: tuned to: persona -> (share, session-rate factor, lapse chance or None to keep).
_MIXES: dict[str, dict[str, tuple[float, float, float | None]]] = {
    # Regular buyers at a slower, weekly rhythm; more churners among them.
    "regulars": {
        "loyal_buyer": (0.3, 0.5, 0.05),
        "browser": (0.1, 1.0, None),
        "cart_abandoner": (0.1, 1.0, None),
        "bargain_hunter": (0.25, 0.6, 0.2),
        "churner": (0.2, 0.6, None),
        "new_visitor": (0.05, 1.0, None),
    },
    # Casual visitors: mostly browsing and one-off visits, half as often, lapsing more.
    "casual": {
        "loyal_buyer": (0.05, 0.5, 0.1),
        "browser": (0.35, 0.5, 0.25),
        "cart_abandoner": (0.15, 0.5, 0.25),
        "bargain_hunter": (0.05, 0.5, 0.25),
        "churner": (0.1, 0.5, None),
        "new_visitor": (0.3, 1.0, 0.6),
    },
    # Heavy users and many leavers: busy sessions, a third of users quit.
    "leavers": {
        "loyal_buyer": (0.2, 1.5, 0.1),
        "browser": (0.15, 1.5, 0.2),
        "cart_abandoner": (0.1, 1.5, 0.2),
        "bargain_hunter": (0.1, 1.5, 0.2),
        "churner": (0.35, 1.0, None),
        "new_visitor": (0.1, 1.0, None),
    },
}
MIXES = ("default", *_MIXES)
"""Persona mixes :class:`GeneratorConfig` accepts."""


def persona_mix(name: str) -> tuple[tuple[Persona, ...], tuple[float, ...]]:
    """Return the personas of mix ``name`` and their cumulative shares."""
    if name == "default":
        return PERSONAS, PERSONA_CUM
    changes = _MIXES[name]
    personas = []
    for p in PERSONAS:
        share, rate, lapse = changes[p.name]
        personas.append(
            dataclasses.replace(p, share=share, sessions_per_day=p.sessions_per_day * rate, lapse=p.lapse if lapse is None else lapse)
        )
    return tuple(personas), tuple(itertools.accumulate(p.share for p in personas))
