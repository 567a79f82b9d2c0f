"""Simulate one session of a user: its steps (type, properties, context, traits) and times.

Part of the generator (:mod:`journeyflow.generator`). The functions draw from the user's own
random stream in a fixed order, which keeps a seed's data byte-identical.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from journeyflow.generator_shop import (
    CATEGORIES,
    FAVOURITE_SHARE,
    FOLLOW_RELATED,
    OTHER_CATEGORY_SCALE,
    PAGES,
    POS_CONTEXT,
    REFERRERS,
    SHOP,
    cart_quantity,
    line_props,
    newsletter_campaign,
)
from journeyflow.generator_time import (
    CLICK_GAP_RANGE_MS,
    MAX_BROWSE_EVENTS,
    MAX_CART_LINES,
    MIN_CLICK_GAP_MS,
    SESSION_SPAN_MS,
)

if TYPE_CHECKING:
    from journeyflow.generator_user import User

__all__ = ["Step", "order_props", "session_stamps", "simulate_session"]

# One event of a session before it gets its time and is serialised: (type, properties,
# context, traits).
Step = tuple[str, "dict | None", dict, "dict | None"]


def simulate_session(user: User, start: int, number: int | None) -> tuple[list[Step], int]:
    """Simulate one session; return its steps and its revenue in cents.

    ``number`` is the session's index in the period, or None in the horizon, where the
    one-off events (login, consent, forget) never happen.
    """
    random_ = user.rng.random
    persona = user.persona
    one_off = number is not None and (
        number in (user.identify_session, user.opt_out_session, user.forget_session, user.second_login)
        or (number == 0 and user.accepts_consent)
    )
    user.on_second = number in user.second_sessions
    # In-store purchases need a loyalty card, so only identified users make them, and the
    # one-off events happen online.
    if persona.pos and user.identified and not one_off and random_() < persona.pos:
        user.on_second = False  # in the shop, with the loyalty card
        step, revenue_cents = _store_purchase(user)
        return [step], revenue_cents
    context = user.web_context if random_() < user.web_share else user.app_context
    steps: list[Step] = []
    landing = _arrive(user, steps, start, number, context)
    intent = random_() < persona.buy_intent
    identifies = number is not None and number in (user.identify_session, user.second_login)
    _browse(user, steps, landing, context, identifies, intent)
    revenue_cents = _checkout(user, steps, context, intent)
    if number == user.forget_session:
        steps.append(("forget", None, context, None))
    return steps, revenue_cents


def _arrive(user: User, steps: list[Step], start: int, number: int | None, context: dict) -> dict:
    """Append the steps before the first page (email, consent); return the landing page's properties."""
    random_ = user.rng.random
    url = PAGES[0] if random_() < 0.5 else user.shared.catalogue.category_urls[_category(user)]
    referrer = REFERRERS[int(random_() * len(REFERRERS))]
    if random_() < user.persona.email:
        name = newsletter_campaign(start)
        campaign = {"campaign": name}
        steps.append(("email_open", campaign, user.email_context, None))
        if random_() < 0.8:
            steps.append(("email_click", campaign, user.email_context, None))
        url = f"{SHOP}/deals?utm_campaign={name}"
        referrer = "email"
    consent = None
    if number == user.opt_out_session:
        consent = {"personalization": False, "marketing": False}
    elif number == 0 and user.accepts_consent:
        consent = {"personalization": True, "marketing": random_() < 0.5}
    if consent is not None:
        steps.append(("consent", None, {**context, "consent": consent}, None))
    return {"url": url, "referrer": referrer}


def _browse(user: User, steps: list[Step], landing: dict, context: dict, identifies: bool, intent: bool) -> None:
    """Append the browsing steps: the landing page, then views, searches and cart changes."""
    rng = user.rng
    random_ = rng.random
    persona = user.persona
    catalogue = user.shared.catalogue
    cart = user.cart
    add = steps.append
    clicks = min(MAX_BROWSE_EVENTS, 1 + int(rng.expovariate(1.0 / persona.browse_events)))
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
            add((user.identify_type, {"method": "password"}, context, user.traits))
            login_at = 0
        draw = random_()
        if cart and draw < remove_cut:
            product = next(iter(cart))
            add(("remove_from_cart", line_props(catalogue, product, cart.pop(product)), context, None))
        elif draw < page_cut:
            referrer, url = url, _page(user)
            add(("page_view", {"url": url, "referrer": referrer}, context, None))
        elif draw < product_cut:
            product = last_viewed = _next_product(user, last_viewed)
            add(("product_view", catalogue.view_props[product], context, None))
            if random_() < add_chance and len(cart) < MAX_CART_LINES and done + 1 < clicks:
                quantity = cart_quantity(random_())
                cart[product] = cart.get(product, 0) + quantity
                add(("add_to_cart", line_props(catalogue, product, quantity), context, None))
                done += 1
        else:
            options = queries[_category(user)]
            add(("search", {"query": options[int(random_() * len(options))]}, context, None))
        done += 1
    if login_at:
        add((user.identify_type, {"method": "password"}, context, user.traits))


def _checkout(user: User, steps: list[Step], context: dict, intent: bool) -> int:
    """Append the checkout steps, if any; return the revenue in cents (0 without a purchase)."""
    cart = user.cart
    catalogue = user.shared.catalogue
    if intent and not cart:
        product = _product(user)
        cart[product] = 1
        steps.append(("add_to_cart", line_props(catalogue, product, 1), context, None))
    if not cart or not (intent or user.rng.random() < user.persona.checkout):
        return 0
    value_cents = sum(catalogue.price_cents[p] * q for p, q in cart.items())
    steps.append(("checkout_start", {"cart_value": value_cents / 100}, context, None))
    if not intent:
        return 0
    steps.append(("purchase", order_props(user, cart, value_cents), context, None))
    cart.clear()
    return value_cents


def session_stamps(user: User, start: int, count: int) -> list[int]:
    """Return ``count`` event times from ``start``, 10 s to 3 min apart, within the session span."""
    random_ = user.rng.random
    power = user.persona.gap_power
    lo, span = MIN_CLICK_GAP_MS, CLICK_GAP_RANGE_MS
    t = start
    stamps = [t]
    for _ in range(count - 1):
        t += lo + int(span * random_() ** power)
        stamps.append(t)
    floor = lo * (count - 1)
    spare = t - start - floor
    room = SESSION_SPAN_MS - floor
    if spare <= room:
        return stamps
    # Rare: shrink the part of every gap above the minimum so the session fits its span.
    shrunk = [start]
    for earlier, later in itertools.pairwise(stamps):
        shrunk.append(shrunk[-1] + lo + (later - earlier - lo) * room // spare)
    return shrunk


def _store_purchase(user: User) -> tuple[Step, int]:
    """Return an in-store purchase at the till, which leaves the web cart alone, and its revenue."""
    basket: dict[int, int] = {}
    for _ in range(1 + int(user.rng.random() * 3)):
        product = _product(user)
        basket[product] = basket.get(product, 0) + 1
    value_cents = sum(user.shared.catalogue.price_cents[p] * q for p, q in basket.items())
    return ("purchase", order_props(user, basket, value_cents), POS_CONTEXT, None), value_cents


def order_props(user: User, basket: dict[int, int], value_cents: int) -> dict:
    """Return the properties of a purchase of ``basket``."""
    user.orders += 1
    catalogue = user.shared.catalogue
    return {
        "order_id": user.order_prefix + str(user.orders),
        "revenue": value_cents / 100,
        "currency": "EUR",
        "items": [line_props(catalogue, p, q) for p, q in basket.items()],
    }


def _category(user: User) -> int:
    """Pick a category: mostly a favourite one."""
    # One draw picks both the branch and, rescaled, the category within it.
    draw = user.rng.random()
    if draw < FAVOURITE_SHARE:
        return user.favourites[int(draw * user.favourite_scale)]
    return min(len(CATEGORIES) - 1, int((draw - FAVOURITE_SHARE) * OTHER_CATEGORY_SCALE))


def _product(user: User) -> int:
    """Pick a product from this persona's price pool; the popular ones more often."""
    pool = user.pools[_category(user)]
    return pool[int(len(pool) * user.rng.random() ** user.pool_skew)]


def _next_product(user: User, last_viewed: int | None) -> int:
    """Pick the next product viewed in a session: often one related to the last one."""
    related = user.shared.catalogue.related
    if last_viewed is not None and related and user.rng.random() < FOLLOW_RELATED:
        options = related[last_viewed]
        # Squared: the first related products are the likeliest, as on a real shelf.
        return options[int(len(options) * user.rng.random() ** 2)]
    return _product(user)


def _page(user: User) -> str:
    """Pick a content page: a category page or one of the shop's general pages."""
    if user.rng.random() < 0.6:
        return user.shared.catalogue.category_urls[_category(user)]
    return PAGES[int(user.rng.random() * len(PAGES))]
