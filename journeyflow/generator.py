"""Generate deterministic synthetic click events, with ground truth for model quality.

The generator writes JSON Lines that follow the input contract for click events, plus noise
(duplicates, malformed lines, out-of-order and late events) in configurable shares. A second
file holds the ground truth per user: the persona, the sessions of the written period, and what
the user does in a future horizon that is simulated with the same dynamics but never written.

Users follow one of six personas, drawn per user with these shares:

- ``loyal_buyer`` (15%): about 3 sessions a week, buys in almost half of them, premium items,
  sometimes in store (channel ``pos``).
- ``browser`` (25%): long sessions of page and product views, hardly ever a cart.
- ``cart_abandoner`` (15%): fills the cart, often starts the checkout, rarely pays.
- ``bargain_hunter`` (15%): short sessions, searches a lot, cheap items, most sessions start
  from a newsletter (``email_open``, ``email_click``).
- ``churner`` (15%): active until a random point at 20-70% of the period, then gone for good.
- ``new_visitor`` (15%): 1-3 short sessions, the first within the last 14 days of the period.

Guarantees:

- The same :class:`GeneratorConfig` gives byte-identical output, ``.gz`` included (the gzip
  header carries no name and no time). Every user draws from its own ``random.Random`` seeded
  with ``"<seed>:<index>"``, so user ``i`` behaves the same whatever the number of users.
- One user's events have strictly increasing ``ts``. A session lasts at most 90 minutes and the
  next one starts at least 45 minutes after it ends, so a 30-minute-gap sessioniser recovers
  exactly the sessions listed in the ground truth (which, like the sessions operator, leaves
  ``consent`` and ``forget`` out of a session's bounds and count).
- Lines are written in order of their write time, ties broken by the line's bytes: ``ts`` for
  most, ``ts`` plus up to 5 minutes for out-of-order events and duplicates, plus 1-3 hours for
  late events, ``ts`` plus 1 ms for a malformed line, so it follows its valid original.
- Memory does not grow with the number of events: the period is generated one day at a time
  and only the lines due after that day are carried over. What stays is per user: the plan
  of session starts, the session summaries and, once the user is done, the truth row.

Measured on the development machine, a 2-core VM whose speed varied by up to 2x with other
load (Python 3.11; rates are the best of 3 runs, at quiet and at busy times):

- ``--users 1000 --days 30``: 54,013 events (54,676 lines) in 7,493 sessions, 0.7-1.2 s.
- ``--users 4000 --days 30`` (223k events): 56k-105k events/s written without the ground
  truth, 46k-78k events/s with it (the horizon is simulated too).
- ``--users 20000 --days 90``: 3.3 million events in 43-53 s with the ground truth, peak
  resident memory 0.5 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import itertools
import math
import random
import sys
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import BinaryIO

import orjson

from config.settings import DEFAULT_CONFIG
from journeyflow import response
from journeyflow.errors import ConfigError
from journeyflow.events import SESSION_EXCLUDED_TYPES
from journeyflow.response import RuleResponse
from operators.goals import holdout_draw

__all__ = ["MIXES", "GeneratorConfig", "GeneratorStats", "add_arguments", "generate", "run"]

_SECOND_MS = 1_000
_MINUTE_MS = 60 * _SECOND_MS
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS

# A session never lasts longer than _SESSION_SPAN_MS and starts are at least _SPACING_MS apart,
# so the silence between two sessions is always at least 45 minutes.
_SESSION_SPAN_MS = 90 * _MINUTE_MS
_SESSION_GAP_MS = 45 * _MINUTE_MS
_SPACING_MS = _SESSION_SPAN_MS + _SESSION_GAP_MS
_MIN_CLICK_GAP_MS = 10 * _SECOND_MS
_CLICK_GAP_RANGE_MS = 3 * _MINUTE_MS - _MIN_CLICK_GAP_MS
_MAX_SESSION_EVENTS = 40
# Room kept for the events that are not browsing: two email events, a consent, a login, an
# add_to_cart, the checkout and the purchase, a forget.
_MAX_BROWSE_EVENTS = _MAX_SESSION_EVENTS - 8
_MAX_CART_LINES = 8

_NEW_VISITOR_WINDOW_MS = 14 * _DAY_MS
_INT_TS_SHARE = 0.2
_CONSENT_ACCEPT_SHARE = 0.05
_FAVOURITE_SHARE = 0.8
_IDENTIFY_TYPES = ("login", "identify")

_SHOP = "https://shop.example.com"
_PAGES = tuple(f"{_SHOP}{path}" for path in ("/", "/deals", "/new", "/help", "/account", "/stores"))
_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.instagram.com/",
    "https://www.facebook.com/",
    "",
    "",
)
_WEB_DEVICES = ("desktop", "desktop", "mobile", "mobile", "mobile", "tablet")
_APP_DEVICES = ("ios", "android")
_POS_CONTEXT = {"channel": "pos", "device": "pos-terminal"}

# Hour-of-day weights in UTC: night trough, lunch bump, evening peak; weekends start later.
_WEEKDAY_HOURS = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.75, 0.85, 0.9, 0.95,
    1.1, 1.0, 0.9, 0.9, 0.95, 1.1, 1.35, 1.7, 1.9, 1.8, 1.3, 0.6,
)  # fmt: skip
_WEEKEND_HOURS = (
    0.35, 0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.3, 0.55, 0.85, 1.1, 1.25,
    1.3, 1.3, 1.25, 1.2, 1.2, 1.25, 1.35, 1.55, 1.7, 1.6, 1.2, 0.7,
)  # fmt: skip
_WEEKDAY_CUM = tuple(itertools.accumulate(_WEEKDAY_HOURS))
_WEEKEND_CUM = tuple(itertools.accumulate(_WEEKEND_HOURS))
# Session volume per weekday, Monday first.
_DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.9, 1.2, 1.3)

_PRODUCTS = 2000
# (category, median price in EUR, search terms)
_CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("electronics", 180.0, ("headphones", "usb-c charger", "smartwatch", "laptop", "speaker")),
    ("fashion", 45.0, ("sneakers", "denim jacket", "summer dress", "wool scarf", "t-shirt")),
    ("home", 55.0, ("cushion", "table lamp", "bed linen", "coffee maker", "rug")),
    ("beauty", 22.0, ("face cream", "perfume", "shampoo", "lipstick", "sunscreen")),
    ("sports", 50.0, ("running shoes", "yoga mat", "dumbbells", "bike helmet", "tent")),
    ("books", 16.0, ("crime novel", "cookbook", "travel guide", "fantasy", "biography")),
    ("toys", 28.0, ("lego", "puzzle", "doll", "board game", "rc car")),
    ("grocery", 7.0, ("coffee beans", "olive oil", "chocolate", "tea", "pasta")),
    ("garden", 38.0, ("garden hose", "seeds", "plant pot", "pruning shears", "lawn mower")),
    ("auto", 35.0, ("car wax", "phone mount", "wiper blades", "dash cam", "seat covers")),
    ("jewelry", 110.0, ("necklace", "silver ring", "earrings", "bracelet", "watch")),
    ("pets", 20.0, ("dog food", "cat litter", "pet bed", "chew toy", "leash")),
)
_PRICE_SIGMA = 0.55
# Co-view structure (see _related_products): the chance that a product view in a session
# follows a product related to the one viewed before it, and how many each product has.
_FOLLOW_RELATED = 0.6
_RELATED_SAME_CATEGORY = 6
_RELATED_OTHER_CATEGORY = 2
_OTHER_CATEGORY_SCALE = len(_CATEGORIES) / (1 - _FAVOURITE_SHARE)


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of one generated data set; the defaults make about 50k events.

    Shares are fractions of the valid events, except ``anonymous_share``, ``opt_out_share``
    and ``forget_share``, which are fractions of the users. Duplicates, out-of-order, late and
    malformed lines are drawn exclusively per event, so their shares must add up to at most 1.
    """

    users: int = 1000
    """Number of users (``u0`` ... ``u<users-1>``)."""
    days: int = 30
    """Length of the written period."""
    seed: int = 7
    """Seed of every random draw; part of every event id, so data sets can be concatenated."""
    start: datetime = datetime(2026, 8, 1, tzinfo=timezone.utc)
    """First instant of the period; must be timezone-aware."""
    horizon_days: int = 30
    """Days after the period simulated for the ground truth only, never written."""
    duplicate_share: float = 0.01
    """Events written a second time, same line, 1 s to 5 min later."""
    malformed_share: float = 0.002
    """Extra malformed lines per event."""
    out_of_order_share: float = 0.02
    """Events written 30 s to 5 min after their ``ts``: inside the default 10-minute lateness."""
    late_share: float = 0.0
    """Events written 1-3 hours after their ``ts``: beyond the lateness (the truth still has them)."""
    anonymous_share: float = 0.1
    """Users who browse with an ``anonymous_id`` only until they log in."""
    never_identify_share: float = 0.3
    """Of those anonymous users, the share who never log in: their device keeps its own profile."""
    second_device_share: float = 0.1
    """Identified users who also browse from a second device, from the second half of their
    sessions on: anonymous there until they log in on it during its first session; the
    device's later sessions carry both ids (a logged-out return keeps the cookie)."""
    opt_out_share: float = 0.01
    """Users who refuse personalization (consent) at some session of the period."""
    forget_share: float = 0.002
    """Users whose last event of the period is an erasure request."""
    responses: tuple[RuleResponse, ...] = ()
    """Simulated responses to cart-abandonment triggers (:mod:`journeyflow.response`); none by default."""
    mix: str = "default"
    """Persona mix (:data:`MIXES`): the shares, rhythms and lapse chances of the personas."""

    def __post_init__(self) -> None:
        for name in ("users", "days", "horizon_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be an integer >= 1; got {value!r} instead"
                raise ConfigError(msg)
        if self.start.tzinfo is None:
            msg = f"start must be timezone-aware; got {self.start.isoformat()} instead"
            raise ConfigError(msg)
        shares = (
            "duplicate_share",
            "malformed_share",
            "out_of_order_share",
            "late_share",
            "anonymous_share",
            "never_identify_share",
            "second_device_share",
            "opt_out_share",
            "forget_share",
        )
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"{name} must be between 0 and 1; got {value!r} instead"
                raise ConfigError(msg)
        if self.mix not in MIXES:
            msg = f"mix must be one of {', '.join(MIXES)}; got {self.mix!r} instead"
            raise ConfigError(msg)
        noise = self.duplicate_share + self.malformed_share + self.out_of_order_share + self.late_share
        if noise > 1.0:
            msg = f"duplicate, malformed, out-of-order and late shares must add up to <= 1; got {noise:g} instead"
            raise ConfigError(msg)


@dataclass(frozen=True)
class GeneratorStats:
    """What :func:`generate` wrote; ``events`` counts valid events only, duplicates excluded."""

    events: int
    lines: int
    duplicates: int
    malformed: int
    out_of_order: int
    late: int
    users: int
    sessions: int


@dataclass(frozen=True, slots=True)
class _Persona:
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


_PERSONAS = (
    _Persona("loyal_buyer", 0.15, 0.35, 5.0, 0.25, 0.6, 0.45, 0.05, 0.0, 0.02, "premium", 0.05, 0.1, 0.03, 2.0),
    _Persona("browser", 0.25, 0.3, 11.0, 0.45, 0.47, 0.01, 0.01, 0.0, 0.01, "any", 0.03, 0.0, 0.1, 3.0),
    _Persona("cart_abandoner", 0.15, 0.23, 5.0, 0.15, 0.7, 0.03, 0.5, 0.4, 0.06, "any", 0.05, 0.0, 0.12, 2.0),
    _Persona("bargain_hunter", 0.15, 0.25, 2.5, 0.1, 0.4, 0.15, 0.04, 0.0, 0.02, "cheap", 0.6, 0.0, 0.12, 1.5),
    _Persona("churner", 0.15, 0.45, 5.0, 0.3, 0.55, 0.2, 0.05, 0.05, 0.02, "any", 0.05, 0.0, 1.0, 2.0),
    _Persona("new_visitor", 0.15, 0.12, 2.0, 0.55, 0.4, 0.03, 0.03, 0.0, 0.01, "any", 0.0, 0.0, 0.45, 2.0),
)
_PERSONA_CUM = tuple(itertools.accumulate(p.share for p in _PERSONAS))

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


def _mix(name: str) -> tuple[tuple[_Persona, ...], tuple[float, ...]]:
    """Return the personas of mix ``name`` and their cumulative shares."""
    if name == "default":
        return _PERSONAS, _PERSONA_CUM
    changes = _MIXES[name]
    personas = []
    for p in _PERSONAS:
        share, rate, lapse = changes[p.name]
        personas.append(
            dataclasses.replace(p, share=share, sessions_per_day=p.sessions_per_day * rate, lapse=p.lapse if lapse is None else lapse)
        )
    return tuple(personas), tuple(itertools.accumulate(p.share for p in personas))
_CHURNER = "churner"
#: The rules file ``--respond`` reads by default: the shipped one.
DEFAULT_RULES = DEFAULT_CONFIG.with_name("rules.toml")
_NEW_VISITOR = "new_visitor"

# Malformed line kinds; each is one reason the contract gives for a dead letter.
_MALFORMED_KINDS = (
    "truncated",
    "empty",
    "array",
    "invalid_utf8",
    "missing_ts",
    "missing_event_id",
    "unknown_type",
    "negative_revenue",
    "numeric_event_id",
    "unparsable_ts",
    "product_view_without_product_id",
)

# One event of a session before it gets its time and is serialised: (type, properties,
# context, traits).
_Step = tuple[str, "dict | None", dict, "dict | None"]


@cache
def _hms_table() -> tuple[str, ...]:
    """Return ``"HH:MM:SS"`` for every second of a day, so formatting is two lookups."""
    sixty = [f"{n:02d}" for n in range(60)]
    hours = [f"{n:02d}:" for n in range(24)]
    minutes = [f"{n}:" for n in sixty]
    return tuple(h + m + s for h in hours for m in minutes for s in sixty)


@cache
def _millis_table() -> tuple[str, ...]:
    """Return ``".mmmZ"`` for every millisecond of a second."""
    return tuple(f".{ms:03d}Z" for ms in range(1000))


class _TsFormatter:
    """Format epoch milliseconds as RFC 3339 UTC with millisecond precision.

    >>> _TsFormatter().format(1785679509123)
    '2026-08-02T14:05:09.123Z'
    """

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._hms = _hms_table()
        self._millis = _millis_table()

    def format(self, ts_ms: int) -> str:
        """Return ``ts_ms`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
        day, rest = divmod(ts_ms, _DAY_MS)
        second, milli = divmod(rest, 1000)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%dT")
            self._days[day] = prefix
        return prefix + self._hms[second] + self._millis[milli]


@dataclass(frozen=True, slots=True)
class _Catalogue:
    """Products with category-typical log-normal prices, indexed for the ways users pick them."""

    price_cents: tuple[int, ...]
    view_props: tuple[dict, ...]  # shared property dicts: orjson only reads them
    # Per price style ("cheap", "premium", "any"), per category, the products a user of that
    # style picks from; "any" lists the whole category, most popular first.
    pools: dict[str, tuple[tuple[int, ...], ...]]
    queries: tuple[tuple[str, ...], ...]
    bargain_queries: tuple[tuple[str, ...], ...]
    category_urls: tuple[str, ...]
    # Per product, the products looked at next to it, likeliest first (_related_products).
    related: tuple[tuple[int, ...], ...] = ()


def _build_catalogue(seed: int) -> _Catalogue:
    """Draw the product catalogue for ``seed``."""
    rng = random.Random(f"{seed}:catalogue")
    members: list[list[int]] = [[] for _ in _CATEGORIES]
    price_cents: list[int] = []
    view_props: list[dict] = []
    for product in range(_PRODUCTS):
        category = rng.randrange(len(_CATEGORIES))
        name, median, _ = _CATEGORIES[category]
        # Shop prices end in .99; the floor keeps the cheapest groceries at 0.99.
        cents = max(99, round(median * rng.lognormvariate(0.0, _PRICE_SIGMA)) * 100 - 1)
        members[category].append(product)
        price_cents.append(cents)
        view_props.append({"product_id": f"sku-{product}", "category": name, "price": cents / 100})
    popular: list[tuple[int, ...]] = []
    for products in members:
        shuffled = list(products)
        rng.shuffle(shuffled)
        popular.append(tuple(shuffled))
    by_price = [sorted(products, key=lambda p: (price_cents[p], p)) for products in members]
    return _Catalogue(
        price_cents=tuple(price_cents),
        view_props=tuple(view_props),
        pools={
            "cheap": tuple(tuple(ranked[: max(1, len(ranked) * 3 // 10)]) for ranked in by_price),
            "premium": tuple(tuple(ranked[len(ranked) // 2 :]) for ranked in by_price),
            "any": tuple(popular),
        },
        queries=tuple(terms for _, _, terms in _CATEGORIES),
        bargain_queries=tuple(
            tuple(q for term in terms for q in (f"cheap {term}", f"{term} sale", f"{term} deal"))
            for _, _, terms in _CATEGORIES
        ),
        category_urls=tuple(f"{_SHOP}/c/{name}" for name, _, _ in _CATEGORIES),
        related=_related_products(seed, members),
    )


def _related_products(seed: int, members: list[list[int]]) -> tuple[tuple[int, ...], ...]:
    """Draw, per product, the products viewed next to it: mostly of its own category, a
    few of one companion category (phone and charger, tent and sleeping bag).

    Its own random stream, so the rest of the catalogue is drawn as before.
    """
    rng = random.Random(f"{seed}:related")
    category_of = {p: c for c, products in enumerate(members) for p in products}
    companion = [rng.randrange(len(members)) for _ in members]
    related: list[tuple[int, ...]] = []
    for product in range(len(category_of)):
        own = [p for p in members[category_of[product]] if p != product]
        other = members[companion[category_of[product]]] or own
        picks = rng.sample(own, min(_RELATED_SAME_CATEGORY, len(own)))
        picks += rng.sample(other, min(_RELATED_OTHER_CATEGORY, len(other)))
        rng.shuffle(picks)
        related.append(tuple(picks))
    return tuple(related)


def _start_in_day(rng: random.Random, day: int) -> int:
    """Draw a session start on epoch day ``day`` from the hour-of-day profile of its weekday."""
    cum = _WEEKEND_CUM if (day + 3) % 7 >= 5 else _WEEKDAY_CUM  # 1970-01-01 was a Thursday
    hour = bisect_right(cum, rng.random() * cum[-1])
    return day * _DAY_MS + hour * _HOUR_MS + int(rng.random() * _HOUR_MS)


def _session_starts(rng: random.Random, rate: float, first_ms: int, end_ms: int) -> list[int]:
    """Draw session starts in ``[first_ms, end_ms)`` from ``rate`` sessions per day.

    Each calendar day (UTC) gets a Poisson number of sessions, scaled by the weekday, at hours
    drawn from the daily profile. Starts closer than ``_SPACING_MS`` to the previous one are
    dropped, which keeps sessions apart and only thins the busiest users a little.
    """
    random_ = rng.random
    # Knuth's Poisson method; the chance of no session is precomputed per weekday because most
    # days have none and then one draw settles the day.
    no_session = [math.exp(-rate * factor) for factor in _DAY_FACTOR]
    starts: list[int] = []
    previous = -_SPACING_MS
    for day in range(first_ms // _DAY_MS, (end_ms - 1) // _DAY_MS + 1):
        limit = no_session[(day + 3) % 7]
        product = random_()
        count = 0
        while product > limit:
            count += 1
            product *= random_()
        if not count:
            continue
        day_starts = [_start_in_day(rng, day) for _ in range(count)]
        if count > 1:
            day_starts.sort()
        for start in day_starts:
            if first_ms <= start < end_ms and start >= previous + _SPACING_MS:
                starts.append(start)
                previous = start
    return starts


def _one_start(rng: random.Random, first_ms: int, end_ms: int) -> int:
    """Draw one session start in ``[first_ms, end_ms)``, following the daily profile when it fits."""
    for _ in range(8):
        start = _start_in_day(rng, (first_ms + int(rng.random() * (end_ms - first_ms))) // _DAY_MS)
        if first_ms <= start < end_ms:
            return start
    return first_ms + int(rng.random() * (end_ms - first_ms))


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every user of one :func:`generate` call reads."""

    config: GeneratorConfig
    catalogue: _Catalogue
    formatter: _TsFormatter
    period_start_ms: int
    period_end_ms: int
    horizon_end_ms: int
    # Cut points of the one uniform draw per event: below the first a duplicate follows, then
    # out-of-order, then late, then a malformed line follows; above the last nothing happens.
    noise_cuts: tuple[float, float, float, float]
    personas: tuple[_Persona, ...] = _PERSONAS
    persona_cum: tuple[float, ...] = _PERSONA_CUM


class _User:
    """One simulated customer: a plan drawn up front, then its sessions one by one."""

    def __init__(self, shared: _Shared, index: int) -> None:
        config = shared.config
        rng = random.Random(f"{config.seed}:{index}")
        self.rng = rng
        self.shared = shared
        self.index = index
        self.user_id = f"u{index}"
        self.id_prefix = f"e-{config.seed}-{index}-"
        self.order_prefix = f"o-{config.seed}-{index}-"
        persona = rng.choices(shared.personas, cum_weights=shared.persona_cum)[0]
        self.persona = persona
        self.favourites = tuple(rng.sample(range(len(_CATEGORIES)), rng.choice((1, 1, 2, 2, 3))))
        self.favourite_scale = len(self.favourites) / _FAVOURITE_SHARE
        self.pools = shared.catalogue.pools[persona.price]
        # Squaring a uniform draw favours the front of the pool: popularity for "any" shoppers;
        # bargain hunters and premium buyers pick evenly within their price band.
        self.pool_skew = 2.0 if persona.price == "any" else 1.0
        self.web_share = rng.choice((0.9, 0.6, 0.2))
        device = rng.choice(_WEB_DEVICES)
        self.web_context = {"channel": "web", "device": device}
        self.app_context = {"channel": "app", "device": rng.choice(_APP_DEVICES)}
        self.email_context = {"channel": "email", "device": device}
        self.anonymous = rng.random() < config.anonymous_share
        self.opted_out = rng.random() < config.opt_out_share
        self.forgotten = rng.random() < config.forget_share
        self.accepts_consent = rng.random() < _CONSENT_ACCEPT_SHARE
        self.anonymous_id = f"anon-{rng.getrandbits(64):016x}"
        self.traits = {
            "email": f"customer{index}.{rng.getrandbits(16):04x}@example.com",
            "phone": f"+4915{rng.randrange(10**9):09d}",
        }
        self.period_starts, self.horizon_starts = self._plan(rng, shared, persona)
        sessions = len(self.period_starts)
        # Period session numbers of the one-off events; -1 means never. Anonymous users browse
        # 1-3 sessions before they log in; with fewer sessions they log in during the last
        # one, so every user is identified within the period.
        self.identify_session = min(rng.randint(1, 3), sessions - 1) if self.anonymous else -1
        self.identify_type = "identify" if rng.random() < 0.4 else "login"
        self.opt_out_session = rng.randrange(sessions) if self.opted_out else -1
        self.forget_session = sessions - 1 if self.forgotten else -1
        if self.forgotten:
            # The erasure comes with closing the account: the user does not come back.
            self.horizon_starts = []
        self.identified = not self.anonymous
        # Devices are drawn from a stream of their own, so the rest of a seed's data is unchanged.
        devices = random.Random(f"{config.seed}:{index}:devices")
        self.never_identifies = self.anonymous and devices.random() < config.never_identify_share
        if self.never_identifies:
            self.identify_session = -1
        self.second_id = f"anon-{devices.getrandbits(64):016x}"
        second = not self.never_identifies and sessions >= 2 and devices.random() < config.second_device_share
        first_second = max(self.identify_session + 1, sessions // 2)
        self.second_sessions = (
            frozenset([first_second, *(n for n in range(first_second + 1, sessions) if devices.random() < 0.5)])
            if second and first_second < sessions
            else frozenset()
        )
        # The second device logs in during its first session.
        self.second_login = min(self.second_sessions, default=-1)
        self.on_second = False  # the session being written runs on the second device
        self.second_identified = False
        self.cart: dict[int, int] = {}
        self.orders = 0
        self.serial = 0
        # (start_ms, end_ms, converted, events) per written session, for the ground truth.
        self.sessions: list[tuple[int, int, bool, int]] = []
        # Cart-abandonment occasions and their simulated responses, for the ground truth.
        self.occasions: list[dict] = []
        self.last_ts = 0
        self.events = self.duplicates = self.malformed = self.out_of_order = self.late = 0

    @staticmethod
    def _plan(rng: random.Random, shared: _Shared, persona: _Persona) -> tuple[list[int], list[int]]:
        """Draw the session starts of the period (at least one) and of the horizon."""
        first, end, horizon_end = shared.period_start_ms, shared.period_end_ms, shared.horizon_end_ms
        rate = persona.sessions_per_day * rng.lognormvariate(0.0, 0.35)
        returns = rng.random() >= persona.lapse
        if persona.name == _NEW_VISITOR:
            period = [_one_start(rng, max(first, end - _NEW_VISITOR_WINDOW_MS), end)]
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                start = period[-1] + _SPACING_MS + int(rng.random() * 4 * _DAY_MS)
                if start < end:
                    period.append(start)
            horizon = _session_starts(rng, rate, end, horizon_end) if returns else []
        elif persona.name == _CHURNER:
            quit_ms = first + int((end - first) * (0.2 + 0.5 * rng.random()))
            period = _session_starts(rng, rate, first, quit_ms) or [_one_start(rng, first, quit_ms)]
            horizon = []
        else:
            starts = _session_starts(rng, rate, first, horizon_end)
            period = [s for s in starts if s < end] or [_one_start(rng, first, end)]
            horizon = [s for s in starts if s >= end] if returns else []
        horizon = [s for s in horizon if s >= period[-1] + _SPACING_MS]
        return period, horizon

    @property
    def next_start(self) -> int | None:
        """Return the start of the next unwritten session of the period, or None when done."""
        written = len(self.sessions)
        return self.period_starts[written] if written < len(self.period_starts) else None

    def write_sessions(self, until_ms: int, out: list[tuple[int, bytes]]) -> None:
        """Append ``(write_ms, line)`` for every session of the period starting before ``until_ms``."""
        starts = self.period_starts
        while len(self.sessions) < len(starts) and starts[len(self.sessions)] < until_ms:
            number = len(self.sessions)
            steps, revenue_cents = self._session(starts[number], number)
            # Only written sessions need times; the horizon only counts purchases.
            stamps = self._stamps(starts[number], len(steps))
            # Consent and forget are about rights, not behaviour: like the sessions operator,
            # the truth leaves them out of a session's bounds and count.
            counted = [ts for ts, step in zip(stamps, steps) if step[0] not in SESSION_EXCLUDED_TYPES]
            self.sessions.append((counted[0], counted[-1], revenue_cents > 0, len(counted)))
            self.last_ts = stamps[-1]
            self._write(stamps, steps, out)
            if self.shared.config.responses:
                self._respond(number, steps, counted[-1], out)

    def _respond(self, number: int, steps: list[_Step], end_ms: int, out: list[tuple[int, bytes]]) -> None:
        """Write treated customers' responses to the cart-abandonment trigger this session fires.

        See :mod:`journeyflow.response`. Only sessions the engine sees whole
        (identified user, no login, consent or erasure in or before it) count.
        """
        if not self.identified or number in (self.identify_session, self.forget_session):
            return
        # The next session's refusal can reach the engine before this session closes
        # (nothing else of the user's comes in between): it then drops the session unfired.
        if self.opt_out_session != -1 and self.opt_out_session <= number + 1:
            return
        catalogue = self.shared.catalogue
        carted = {props["product_id"] for kind, props, _, _ in steps if kind == "add_to_cart"}
        abandoned = [p for p in self.cart if catalogue.view_props[p]["product_id"] in carted]
        if not abandoned:
            return
        config = self.shared.config
        fmt = self.shared.formatter.format
        trigger_ms = end_ms + response.GAP_MS
        starts = self.period_starts
        next_start = starts[number + 1] if number + 1 < len(starts) else None
        for rule in config.responses:
            draw = lambda what: response.response_draw(config.seed, self.user_id, number, f"{rule.rule}:{what}")  # noqa: E731
            at = response.response_delay_ms(trigger_ms, next_start, self.shared.period_end_ms, draw("when"))
            occasion = {
                "rule": rule.rule,
                "trigger_ts": fmt(trigger_ms),
                "held_out": holdout_draw(rule.rule, self.user_id) < rule.holdout,
                "purchase": at is not None and draw("purchase") < rule.purchase,
                "clicks": [v.name for v in rule.variants if at is not None and draw(v.name) < v.chance],
                "written": False,
            }
            self.occasions.append(occasion)
            if at is None or occasion["held_out"] or not (occasion["purchase"] or occasion["clicks"]):
                continue
            occasion["written"] = True
            lines: list[tuple[str, dict]] = [
                ("email_click", {"campaign": v.campaign}) for v in rule.variants if v.name in occasion["clicks"]
            ]
            if occasion["purchase"] and all(p in self.cart for p in abandoned):
                basket = {p: self.cart.pop(p) for p in abandoned}
                lines.append(("purchase", self._order(basket, sum(catalogue.price_cents[p] * q for p, q in basket.items()))))
            for offset, (kind, props) in enumerate(lines):
                ts = at + offset * 10 * _SECOND_MS
                self.serial += 1
                context = self.web_context if kind == "purchase" else self.email_context
                event = self._event(self.id_prefix + str(self.serial), kind, fmt(ts), props, context, None)
                out.append((ts, orjson.dumps(event)))
                self.events += 1
                self.last_ts = ts

    def _write(self, stamps: list[int], steps: list[_Step], out: list[tuple[int, bytes]]) -> None:
        """Serialise one session and append its lines, noise included, keyed by write time."""
        random_ = self.rng.random
        dumps = orjson.dumps
        fmt = self.shared.formatter.format
        append = out.append
        dup_cut, ooo_cut, late_cut, bad_cut = self.shared.noise_cuts
        id_prefix = self.id_prefix
        user_id = self.user_id
        # Known users are identified from the start; anonymous ones (and second devices) take
        # the general path.
        known = not self.anonymous and not self.on_second
        serial = self.serial
        for ts, (kind, props, context, traits) in zip(stamps, steps):
            serial += 1
            ts_value = ts if random_() < _INT_TS_SHARE else fmt(ts)
            if known and props is not None and traits is None:
                event = {
                    "event_id": id_prefix + str(serial),
                    "type": kind,
                    "user_id": user_id,
                    "ts": ts_value,
                    "properties": props,
                    "context": context,
                }
            else:
                event = self._event(id_prefix + str(serial), kind, ts_value, props, context, traits)
            line = dumps(event)
            draw = random_()
            if draw >= bad_cut:
                append((ts, line))
            elif draw < dup_cut:
                self.duplicates += 1
                append((ts, line))
                append((ts + _SECOND_MS + int(random_() * 299 * _SECOND_MS), line))
            elif draw < ooo_cut:
                self.out_of_order += 1
                append((ts + 30 * _SECOND_MS + int(random_() * 270 * _SECOND_MS), line))
            elif draw < late_cut:
                self.late += 1
                append((ts + _HOUR_MS + int(random_() * 2 * _HOUR_MS), line))
            else:
                self.malformed += 1
                append((ts, line))
                append((ts + 1, self._malformed(event, line)))
        self.serial = serial
        self.events += len(steps)

    def _event(
        self, event_id: str, kind: str, ts_value: int | str, props: dict | None, context: dict, traits: dict | None
    ) -> dict:
        """Build an event dict in the general case: anonymous ids, login, no properties, traits."""
        event: dict = {"event_id": event_id, "type": kind}
        second = self.on_second
        device = self.second_id if second else self.anonymous_id
        if kind in _IDENTIFY_TYPES:
            event["user_id"] = self.user_id
            event["anonymous_id"] = device
            if second:
                self.second_identified = True
            else:
                self.identified = True
        elif self.second_identified if second else self.identified:
            event["user_id"] = self.user_id
            if self.anonymous or second:
                # The cookie stays on the device after the login.
                event["anonymous_id"] = device
        else:
            event["anonymous_id"] = device
        event["ts"] = ts_value
        if props is not None:
            event["properties"] = props
        event["context"] = context
        if traits is not None:
            event["traits"] = traits
        return event

    def truth_row(self) -> bytes:
        """Simulate the horizon and return this user's ground truth as one JSON object."""
        fmt = self.shared.formatter.format
        purchases = revenue_cents = 0
        for start in self.horizon_starts:
            _, cents = self._session(start, None)
            purchases += cents > 0
            revenue_cents += cents
        row = {
            "user_id": self.user_id,
            "persona": self.persona.name,
            "anonymous_id": self.anonymous_id if self.anonymous else None,
            "identified": not self.never_identifies,
            "second_device_id": self.second_id if self.second_sessions else None,
            "churned": not self.horizon_starts,
            "purchases_in_horizon": purchases,
            "revenue_in_horizon": revenue_cents / 100,
            "returns_in_horizon": bool(self.horizon_starts),
            "last_event_ts": fmt(self.last_ts),
            "opted_out": self.opted_out,
            "forgotten": self.forgotten,
            "sessions": [
                {"start": fmt(start), "end": fmt(end), "converted": converted, "events": count}
                for start, end, converted, count in self.sessions
            ],
        }
        if self.shared.config.responses:
            row["occasions"] = self.occasions
        return orjson.dumps(row)

    def _session(self, start: int, number: int | None) -> tuple[list[_Step], int]:
        """Simulate one session; return its steps and its revenue in cents.

        ``number`` is the session's index in the period, or None in the horizon, where the
        one-off events (login, consent, forget) never happen.
        """
        random_ = self.rng.random
        persona = self.persona
        one_off = number is not None and (
            number in (self.identify_session, self.opt_out_session, self.forget_session, self.second_login)
            or (number == 0 and self.accepts_consent)
        )
        self.on_second = number in self.second_sessions
        # In-store purchases need a loyalty card, so only identified users make them, and the
        # one-off events happen online.
        if persona.pos and self.identified and not one_off and random_() < persona.pos:
            self.on_second = False  # in the shop, with the loyalty card
            step, revenue_cents = self._store_purchase()
            return [step], revenue_cents
        context = self.web_context if random_() < self.web_share else self.app_context
        steps: list[_Step] = []
        landing = self._arrive(steps, start, number, context)
        intent = random_() < persona.buy_intent
        identifies = number is not None and number in (self.identify_session, self.second_login)
        self._browse(steps, landing, context, identifies, intent)
        revenue_cents = self._checkout(steps, context, intent)
        if number == self.forget_session:
            steps.append(("forget", None, context, None))
        return steps, revenue_cents

    def _arrive(self, steps: list[_Step], start: int, number: int | None, context: dict) -> dict:
        """Append the steps before the first page (email, consent); return the landing page's properties."""
        random_ = self.rng.random
        url = _PAGES[0] if random_() < 0.5 else self.shared.catalogue.category_urls[self._category()]
        referrer = _REFERRERS[int(random_() * len(_REFERRERS))]
        if random_() < self.persona.email:
            name = _campaign(start)
            campaign = {"campaign": name}
            steps.append(("email_open", campaign, self.email_context, None))
            if random_() < 0.8:
                steps.append(("email_click", campaign, self.email_context, None))
            url = f"{_SHOP}/deals?utm_campaign={name}"
            referrer = "email"
        consent = None
        if number == self.opt_out_session:
            consent = {"personalization": False, "marketing": False}
        elif number == 0 and self.accepts_consent:
            consent = {"personalization": True, "marketing": random_() < 0.5}
        if consent is not None:
            steps.append(("consent", None, {**context, "consent": consent}, None))
        return {"url": url, "referrer": referrer}

    def _browse(self, steps: list[_Step], landing: dict, context: dict, identifies: bool, intent: bool) -> None:
        """Append the browsing steps: the landing page, then views, searches and cart changes."""
        rng = self.rng
        random_ = rng.random
        persona = self.persona
        catalogue = self.shared.catalogue
        cart = self.cart
        add = steps.append
        clicks = min(_MAX_BROWSE_EVENTS, 1 + int(rng.expovariate(1.0 / persona.browse_events)))
        # The login comes after at least one anonymous click.
        login_at = 1 + int(random_() * clicks) if identifies else 0
        add_chance = max(persona.add_to_cart, 0.4) if intent else persona.add_to_cart
        remove_cut = persona.remove
        page_cut = persona.page_weight
        product_cut = page_cut + persona.product_weight
        queries = catalogue.bargain_queries if persona.price == "cheap" else catalogue.queries
        add(("page_view", landing, context, None))
        url = landing["url"]
        last_viewed: int | None = None
        done = 1
        while done < clicks:
            if done == login_at:
                add((self.identify_type, {"method": "password"}, context, self.traits))
                login_at = 0
            draw = random_()
            if cart and draw < remove_cut:
                product = next(iter(cart))
                add(("remove_from_cart", _line_props(catalogue, product, cart.pop(product)), context, None))
            elif draw < page_cut:
                referrer, url = url, self._page()
                add(("page_view", {"url": url, "referrer": referrer}, context, None))
            elif draw < product_cut:
                product = last_viewed = self._next_product(last_viewed)
                add(("product_view", catalogue.view_props[product], context, None))
                if random_() < add_chance and len(cart) < _MAX_CART_LINES and done + 1 < clicks:
                    quantity = _quantity(random_())
                    cart[product] = cart.get(product, 0) + quantity
                    add(("add_to_cart", _line_props(catalogue, product, quantity), context, None))
                    done += 1
            else:
                options = queries[self._category()]
                add(("search", {"query": options[int(random_() * len(options))]}, context, None))
            done += 1
        if login_at:
            add((self.identify_type, {"method": "password"}, context, self.traits))

    def _checkout(self, steps: list[_Step], context: dict, intent: bool) -> int:
        """Append the checkout steps, if any; return the revenue in cents (0 without a purchase)."""
        cart = self.cart
        catalogue = self.shared.catalogue
        if intent and not cart:
            product = self._product()
            cart[product] = 1
            steps.append(("add_to_cart", _line_props(catalogue, product, 1), context, None))
        if not cart or not (intent or self.rng.random() < self.persona.checkout):
            return 0
        value_cents = sum(catalogue.price_cents[p] * q for p, q in cart.items())
        steps.append(("checkout_start", {"cart_value": value_cents / 100}, context, None))
        if not intent:
            return 0
        steps.append(("purchase", self._order(cart, value_cents), context, None))
        cart.clear()
        return value_cents

    def _stamps(self, start: int, count: int) -> list[int]:
        """Return ``count`` event times from ``start``, 10 s to 3 min apart, within the session span."""
        random_ = self.rng.random
        power = self.persona.gap_power
        lo, span = _MIN_CLICK_GAP_MS, _CLICK_GAP_RANGE_MS
        t = start
        stamps = [t]
        for _ in range(count - 1):
            t += lo + int(span * random_() ** power)
            stamps.append(t)
        floor = lo * (count - 1)
        spare = t - start - floor
        room = _SESSION_SPAN_MS - floor
        if spare <= room:
            return stamps
        # Rare: shrink the part of every gap above the minimum so the session fits its span.
        shrunk = [start]
        for earlier, later in itertools.pairwise(stamps):
            shrunk.append(shrunk[-1] + lo + (later - earlier - lo) * room // spare)
        return shrunk

    def _store_purchase(self) -> tuple[_Step, int]:
        """Return an in-store purchase at the till, which leaves the web cart alone, and its revenue."""
        basket: dict[int, int] = {}
        for _ in range(1 + int(self.rng.random() * 3)):
            product = self._product()
            basket[product] = basket.get(product, 0) + 1
        value_cents = sum(self.shared.catalogue.price_cents[p] * q for p, q in basket.items())
        return ("purchase", self._order(basket, value_cents), _POS_CONTEXT, None), value_cents

    def _order(self, basket: dict[int, int], value_cents: int) -> dict:
        """Return the properties of a purchase of ``basket``."""
        self.orders += 1
        catalogue = self.shared.catalogue
        return {
            "order_id": self.order_prefix + str(self.orders),
            "revenue": value_cents / 100,
            "currency": "EUR",
            "items": [_line_props(catalogue, p, q) for p, q in basket.items()],
        }

    def _category(self) -> int:
        """Pick a category: mostly a favourite one."""
        # One draw picks both the branch and, rescaled, the category within it.
        draw = self.rng.random()
        if draw < _FAVOURITE_SHARE:
            return self.favourites[int(draw * self.favourite_scale)]
        return min(len(_CATEGORIES) - 1, int((draw - _FAVOURITE_SHARE) * _OTHER_CATEGORY_SCALE))

    def _product(self) -> int:
        """Pick a product from this persona's price pool; the popular ones more often."""
        pool = self.pools[self._category()]
        return pool[int(len(pool) * self.rng.random() ** self.pool_skew)]

    def _next_product(self, last_viewed: int | None) -> int:
        """Pick the next product viewed in a session: often one related to the last one."""
        related = self.shared.catalogue.related
        if last_viewed is not None and related and self.rng.random() < _FOLLOW_RELATED:
            options = related[last_viewed]
            # Squared: the first related products are the likeliest, as on a real shelf.
            return options[int(len(options) * self.rng.random() ** 2)]
        return self._product()

    def _page(self) -> str:
        """Pick a content page: a category page or one of the shop's general pages."""
        if self.rng.random() < 0.6:
            return self.shared.catalogue.category_urls[self._category()]
        return _PAGES[int(self.rng.random() * len(_PAGES))]

    def _malformed(self, event: dict, line: bytes) -> bytes:
        """Return a broken variant of ``event`` that the contract sends to the dead letters."""
        kind = _MALFORMED_KINDS[int(self.rng.random() * len(_MALFORMED_KINDS))]
        if kind == "truncated":
            return line[: len(line) // 2]
        if kind == "empty":
            return b""
        if kind == "array":
            return b"[" + line + b"]"
        if kind == "invalid_utf8":
            # A lead byte followed by a non-continuation byte is never valid UTF-8.
            return line[:10] + b"\xc3\x28" + line[10:]
        # The rest are valid JSON with one contract violation; a fresh id keeps them apart from
        # the valid event they were copied from.
        broken = dict(event)
        broken["event_id"] = event["event_id"] + "-bad"
        if kind == "missing_ts":
            del broken["ts"]
        elif kind == "missing_event_id":
            del broken["event_id"]
        elif kind == "unknown_type":
            broken["type"] = "teleport"
        elif kind == "negative_revenue":
            broken["type"] = "purchase"
            broken["properties"] = {"order_id": broken["event_id"], "revenue": -19.99, "currency": "EUR", "items": []}
        elif kind == "numeric_event_id":
            broken["event_id"] = int(event["event_id"].rsplit("-", 1)[1])
        elif kind == "unparsable_ts":
            broken["ts"] = "yesterday"
        else:
            broken["type"] = "product_view"
            broken["properties"] = {"category": "books", "price": 9.99}
        return orjson.dumps(broken)


def _campaign(ts_ms: int) -> str:
    """Name the weekly newsletter of the ISO week of ``ts_ms``.

    >>> _campaign(1785679509123)
    'newsletter-2026-w31'
    """
    # Epoch day 0 was a Thursday, so Monday-based weeks start on epoch days 7n - 3.
    return _weekly_campaign((ts_ms // _DAY_MS + 3) // 7)


@cache
def _weekly_campaign(week: int) -> str:
    """Name the newsletter of the week starting on epoch day ``7 * week - 3``."""
    year, number, _ = datetime.fromtimestamp((7 * week - 3) * 86_400, timezone.utc).isocalendar()
    return f"newsletter-{year}-w{number:02d}"


def _quantity(draw: float) -> int:
    """Map a uniform draw to a cart quantity: mostly 1, sometimes 2 or 3."""
    return 1 if draw < 0.8 else 2 if draw < 0.95 else 3


def _line_props(catalogue: _Catalogue, product: int, quantity: int) -> dict:
    """Return ``{product_id, category, price, quantity}`` for a cart line or an order item."""
    return {**catalogue.view_props[product], "quantity": quantity}


def _epoch_ms(moment: datetime) -> int:
    """Return ``moment`` as integer epoch milliseconds."""
    return int(moment.timestamp() * 1000)


def _open_binary(path: Path, stack: contextlib.ExitStack) -> BinaryIO:
    """Open ``path`` for writing, gzip-compressed when it ends in ``.gz``."""
    raw = stack.enter_context(open(path, "wb"))
    if path.suffix != ".gz":
        return raw
    # No file name and mtime 0 in the gzip header, so equal configs give equal bytes. Level 3
    # compresses twice as fast as the default 6 here, for files about a fifth larger.
    return stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0))


def _write_lines(sink: BinaryIO, items: list[tuple[int, bytes]]) -> int:
    """Write the lines of ``items`` and return how many there were."""
    if items:
        sink.write(b"\n".join([line for _, line in items]) + b"\n")
    return len(items)


@dataclass(slots=True)
class _Totals:
    """Counts summed over finished users."""

    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    out_of_order: int = 0
    late: int = 0
    sessions: int = 0

    def add(self, user: _User) -> None:
        """Add the counts of a user whose sessions are all written."""
        self.events += user.events
        self.duplicates += user.duplicates
        self.malformed += user.malformed
        self.out_of_order += user.out_of_order
        self.late += user.late
        self.sessions += len(user.sessions)


def generate(config: GeneratorConfig, out: Path, truth: Path | None = None) -> GeneratorStats:
    """Write the events of ``config`` to ``out`` and, if given, the ground truth to ``truth``.

    The period is generated one day at a time: every user with a session starting that day
    writes it into the day's buffer, keyed by write time; the buffer is sorted, lines due
    before the day's end are written and the rest carries over. No session starts before its
    day, so nothing written later can belong before a line already written.

    ``out`` ending in ``.gz`` is gzip-compressed; parent directories are created. The truth has
    one JSON object per user, in user order. Without ``truth`` the horizon is not simulated at
    all, which saves time and leaves ``out`` byte-identical.
    """
    period_start_ms = _epoch_ms(config.start)
    period_end_ms = period_start_ms + config.days * _DAY_MS
    dup_cut = config.duplicate_share
    ooo_cut = dup_cut + config.out_of_order_share
    late_cut = ooo_cut + config.late_share
    shared = _Shared(
        config=config,
        catalogue=_build_catalogue(config.seed),
        formatter=_TsFormatter(),
        period_start_ms=period_start_ms,
        period_end_ms=period_end_ms,
        horizon_end_ms=period_end_ms + config.horizon_days * _DAY_MS,
        noise_cuts=(dup_cut, ooo_cut, late_cut, late_cut + config.malformed_share),
        personas=_mix(config.mix)[0],
        persona_cum=_mix(config.mix)[1],
    )
    # Users wait in the bucket of the day their next session starts.
    due: dict[int, list[_User]] = {}
    for index in range(config.users):
        user = _User(shared, index)
        due.setdefault((user.period_starts[0] - period_start_ms) // _DAY_MS, []).append(user)
    truth_rows: list[tuple[int, bytes]] = []
    totals = _Totals()
    lines = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        sink = _open_binary(out, stack)
        buffer: list[tuple[int, bytes]] = []
        for day in range(config.days):
            day_end_ms = period_start_ms + (day + 1) * _DAY_MS
            for user in due.pop(day, ()):
                user.write_sessions(day_end_ms, buffer)
                next_start = user.next_start
                if next_start is not None:
                    due.setdefault((next_start - period_start_ms) // _DAY_MS, []).append(user)
                    continue
                # The user is done; dropping it frees its state and only the truth row stays.
                totals.add(user)
                if truth is not None:
                    truth_rows.append((user.index, user.truth_row()))
            buffer.sort()
            # (day_end_ms,) sorts before every (day_end_ms, line): the cut is the first line due later.
            cut = bisect_left(buffer, (day_end_ms,))
            lines += _write_lines(sink, buffer[:cut])
            del buffer[:cut]
        lines += _write_lines(sink, buffer)
    if truth is not None:
        # Users finish in the order of their last session; the truth file goes by user.
        truth_rows.sort()
        truth.parent.mkdir(parents=True, exist_ok=True)
        with truth.open("wb") as truth_file:
            truth_file.write(b"".join(row + b"\n" for _, row in truth_rows))
    return GeneratorStats(
        events=totals.events,
        lines=lines,
        duplicates=totals.duplicates,
        malformed=totals.malformed,
        out_of_order=totals.out_of_order,
        late=totals.late,
        users=config.users,
        sessions=totals.sessions,
    )


def _default_truth_path(out: Path) -> Path:
    """Return where the truth goes when none is named: ``events.jsonl.gz`` -> ``events.truth.jsonl``."""
    name = out.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.truth.jsonl")


def _parse_start(text: str) -> datetime:
    """Parse a ``YYYY-MM-DD`` date as midnight UTC."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError as ex:
        msg = f"start must be a date like 2026-08-01; got {text!r} instead"
        raise ConfigError(msg) from ex
    return day.replace(tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``journeyflow generate`` to ``parser``; :func:`run` reads them."""
    defaults = GeneratorConfig()
    parser.add_argument("--users", type=int, default=defaults.users, help="number of users (default: %(default)s)")
    parser.add_argument("--days", type=int, default=defaults.days, help="days of events to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/events.jsonl"),
        help="events file, gzip-compressed if it ends in .gz (default: %(default)s)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground truth file (default: next to --out, as <name>.truth.jsonl)",
    )
    parser.add_argument(
        "--start",
        default=defaults.start.strftime("%Y-%m-%d"),
        help="first day of the period, YYYY-MM-DD in UTC (default: %(default)s)",
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=defaults.horizon_days,
        help="days after the period simulated for the ground truth only (default: %(default)s)",
    )
    parser.add_argument(
        "--duplicates",
        type=float,
        default=defaults.duplicate_share,
        help="share of events sent twice (default: %(default)s)",
    )
    parser.add_argument(
        "--malformed",
        type=float,
        default=defaults.malformed_share,
        help="malformed lines per event (default: %(default)s)",
    )
    parser.add_argument(
        "--out-of-order",
        type=float,
        default=defaults.out_of_order_share,
        help="share of events written up to 5 minutes late (default: %(default)s)",
    )
    parser.add_argument(
        "--anonymous",
        type=float,
        default=defaults.anonymous_share,
        help="share of users who browse anonymously before they log in (default: %(default)s)",
    )
    parser.add_argument(
        "--never-identify",
        type=float,
        default=defaults.never_identify_share,
        help="share of those anonymous users who never log in (default: %(default)s)",
    )
    parser.add_argument(
        "--second-device",
        type=float,
        default=defaults.second_device_share,
        help="share of identified users who also browse from a second device (default: %(default)s)",
    )
    parser.add_argument(
        "--mix",
        choices=MIXES,
        default=defaults.mix,
        help="persona mix (default: %(default)s)",
    )
    parser.add_argument(
        "--late",
        type=float,
        default=defaults.late_share,
        help="share of events written 1-3 hours late (default: %(default)s)",
    )
    parser.add_argument(
        "--respond",
        action="append",
        default=[],
        metavar="RULE[:VARIANT]=CHANCE",
        help="simulate treated customers' response to a cart-abandonment rule: a purchase (RULE=CHANCE) "
        "or a click on a variant's e-mail (RULE:VARIANT=CHANCE); repeatable (default: none)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="rules file giving the holdout shares and variants for --respond (default: the shipped rules)",
    )


def run(args: argparse.Namespace) -> int:
    """Generate the data set described by ``args``; return the exit status (2 on bad options)."""
    try:
        rules = args.rules if args.rules is not None else DEFAULT_RULES
        responses = response.parse_responses(args.respond, rules)
        config = GeneratorConfig(
            users=args.users,
            days=args.days,
            seed=args.seed,
            start=_parse_start(args.start),
            horizon_days=args.horizon_days,
            duplicate_share=args.duplicates,
            malformed_share=args.malformed,
            out_of_order_share=args.out_of_order,
            late_share=args.late,
            anonymous_share=args.anonymous,
            never_identify_share=args.never_identify,
            second_device_share=args.second_device,
            responses=responses,
            mix=args.mix,
        )
    except ConfigError as ex:
        print(f"journeyflow generate: {ex}", file=sys.stderr)
        return 2
    truth = args.truth if args.truth is not None else _default_truth_path(args.out)
    began = time.perf_counter()
    stats = generate(config, args.out, truth)
    elapsed = time.perf_counter() - began
    print(
        f"wrote {stats.events} events for {stats.users} users in {stats.sessions} sessions "
        f"({stats.lines} lines: {stats.duplicates} duplicates, {stats.malformed} malformed, "
        f"{stats.out_of_order} out of order, {stats.late} late) to {args.out} "
        f"and the truth to {truth} in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 0
