"""The simulated shop: its pages, referrers, devices, product catalogue and newsletters.

Part of the generator (:mod:`journeyflow.generator`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache

from journeyflow.generator_time import DAY_MS

__all__ = [
    "APP_DEVICES",
    "CATEGORIES",
    "FAVOURITE_SHARE",
    "FOLLOW_RELATED",
    "OTHER_CATEGORY_SCALE",
    "PAGES",
    "POS_CONTEXT",
    "REFERRERS",
    "SHOP",
    "WEB_DEVICES",
    "Catalogue",
    "build_catalogue",
    "cart_quantity",
    "line_props",
    "newsletter_campaign",
]

FAVOURITE_SHARE = 0.8

SHOP = "https://shop.example.com"
PAGES = tuple(f"{SHOP}{path}" for path in ("/", "/deals", "/new", "/help", "/account", "/stores"))
REFERRERS = (
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.instagram.com/",
    "https://www.facebook.com/",
    "",
    "",
)
WEB_DEVICES = ("desktop", "desktop", "mobile", "mobile", "mobile", "tablet")
APP_DEVICES = ("ios", "android")
POS_CONTEXT = {"channel": "pos", "device": "pos-terminal"}

_PRODUCTS = 2000
# (category, median price in EUR, search terms)
CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
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
FOLLOW_RELATED = 0.6
_RELATED_SAME_CATEGORY = 6
_RELATED_OTHER_CATEGORY = 2
OTHER_CATEGORY_SCALE = len(CATEGORIES) / (1 - FAVOURITE_SHARE)


@dataclass(frozen=True, slots=True)
class Catalogue:
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


def build_catalogue(seed: int) -> Catalogue:
    """Draw the product catalogue for ``seed``."""
    rng = random.Random(f"{seed}:catalogue")
    members: list[list[int]] = [[] for _ in CATEGORIES]
    price_cents: list[int] = []
    view_props: list[dict] = []
    for product in range(_PRODUCTS):
        category = rng.randrange(len(CATEGORIES))
        name, median, _ = CATEGORIES[category]
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
    return Catalogue(
        price_cents=tuple(price_cents),
        view_props=tuple(view_props),
        pools={
            "cheap": tuple(tuple(ranked[: max(1, len(ranked) * 3 // 10)]) for ranked in by_price),
            "premium": tuple(tuple(ranked[len(ranked) // 2 :]) for ranked in by_price),
            "any": tuple(popular),
        },
        queries=tuple(terms for _, _, terms in CATEGORIES),
        bargain_queries=tuple(
            tuple(q for term in terms for q in (f"cheap {term}", f"{term} sale", f"{term} deal"))
            for _, _, terms in CATEGORIES
        ),
        category_urls=tuple(f"{SHOP}/c/{name}" for name, _, _ in CATEGORIES),
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


def newsletter_campaign(ts_ms: int) -> str:
    """Name the weekly newsletter of the ISO week of ``ts_ms``.

    >>> newsletter_campaign(1785679509123)
    'newsletter-2026-w31'
    """
    # Epoch day 0 was a Thursday, so Monday-based weeks start on epoch days 7n - 3.
    return _weekly_campaign((ts_ms // DAY_MS + 3) // 7)


@cache
def _weekly_campaign(week: int) -> str:
    """Name the newsletter of the week starting on epoch day ``7 * week - 3``."""
    year, number, _ = datetime.fromtimestamp((7 * week - 3) * 86_400, timezone.utc).isocalendar()
    return f"newsletter-{year}-w{number:02d}"


def cart_quantity(draw: float) -> int:
    """Map a uniform draw to a cart quantity: mostly 1, sometimes 2 or 3."""
    return 1 if draw < 0.8 else 2 if draw < 0.95 else 3


def line_props(catalogue: Catalogue, product: int, quantity: int) -> dict:
    """Return ``{product_id, category, price, quantity}`` for a cart line or an order item."""
    return {**catalogue.view_props[product], "quantity": quantity}
