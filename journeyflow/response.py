"""Simulated responses to cart-abandonment triggers, for the generator (closed-loop ground truth).

The generator writes its events before any replay, so it cannot see the
triggers the engine will fire. It can foresee one kind: a session that ends
with products added to the cart and not bought is what the shipped
``cart_abandonment`` rule fires on, half an hour (the default session gap)
after the session's last event. For each such *occasion* of an identified,
consenting customer the generator draws, from a hash of (seed, user, session),
the customer's potential responses:

* ``purchase`` (``RULE=CHANCE``): with this chance the customer buys the
  abandoned products between 1 minute and 24 hours after the trigger;
* per variant (``RULE:VARIANT=CHANCE``): with this chance the customer clicks
  the variant's e-mail (an ``email_click`` carrying the variant's constant
  ``campaign`` payload) shortly after the trigger.

Held-out customers (the engine's own :func:`operators.goals.holdout_draw`, so
both agree on who is held out) receive nothing and respond to nothing: only
treated customers' responses are written. Variant clicks are drawn for every
variant, so the data holds each variant's potential outcome; a goal on the
sent campaign counts only the click on the variant the bandit chose, which is
how bandits are evaluated offline on full-information data. The truth file
lists every occasion with its draws, so :mod:`journeyflow.loop_evaluation`
can compute the true effect (a response only adds a conversion where the
customer would not have bought anyway).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from journeyflow.errors import ConfigError

__all__ = [
    "GAP_MS",
    "VariantResponse",
    "RuleResponse",
    "parse_responses",
    "response_draw",
    "response_delay_ms",
    "response_tag",
]

#: The engine's default session gap: the trigger fires this long after the session's last event.
GAP_MS = 30 * 60_000
_MINUTE_MS = 60_000
_MAX_DELAY_MS = 24 * 60 * _MINUTE_MS


@dataclass(frozen=True)
class VariantResponse:
    """A variant's simulated click-through: its campaign and the chance of a click."""

    name: str
    campaign: str
    chance: float


@dataclass(frozen=True)
class RuleResponse:
    """The simulated response to one (cart-abandonment) rule."""

    rule: str
    holdout: float
    window_ms: int
    purchase: float = 0.0
    variants: tuple[VariantResponse, ...] = ()


def _chance(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        msg = f"response {spec!r}: the chance must be a number between 0 and 1; got {text!r} instead"
        raise ConfigError(msg)
    return value


def parse_responses(specs: list[str], rules_path: Path) -> tuple[RuleResponse, ...]:
    """Return the responses of ``RULE=CHANCE`` / ``RULE:VARIANT=CHANCE`` specs, checked against the rules file.

    The rules file gives each rule's holdout share, its goal window and its
    variants' campaigns (a variant's ``campaign`` payload must be a constant).
    """
    if not specs:
        return ()
    from operators.rules import load_rules

    rules = {rule.name: rule for rule in load_rules(rules_path).triggers}
    purchase: dict[str, float] = {}
    clicks: dict[str, dict[str, float]] = {}
    for spec in specs:
        target, sep, text = spec.partition("=")
        name, _, variant = target.partition(":")
        if not sep or not name:
            msg = f"response must look like RULE=CHANCE or RULE:VARIANT=CHANCE; got {spec!r} instead"
            raise ConfigError(msg)
        rule = rules.get(name)
        if rule is None or rule.on != "session_close":
            known = ", ".join(sorted(r.name for r in rules.values() if r.on == "session_close"))
            msg = f"response {spec!r}: the rule must be a session_close rule of {str(rules_path)!r} ({known}); got {name!r} instead"
            raise ConfigError(msg)
        if variant:
            names = [v.name for v in rule.variants]
            if variant not in names:
                msg = f"response {spec!r}: variant must be one of {', '.join(names) or '(none declared)'}; got {variant!r} instead"
                raise ConfigError(msg)
            clicks.setdefault(name, {})[variant] = _chance(spec, text)
        else:
            purchase[name] = _chance(spec, text)
    found = []
    for name in sorted(set(purchase) | set(clicks)):
        rule = rules[name]
        variants = []
        for v in rule.variants:
            if v.name not in clicks.get(name, {}):
                continue
            campaign = dict(v.payload).get("campaign")
            value = campaign.evaluate({}) if campaign is not None and not campaign.variables else None
            if not isinstance(value, str):
                msg = f"response {name}:{v.name}: the variant needs a constant campaign payload (campaign = \"'name'\")"
                raise ConfigError(msg)
            variants.append(VariantResponse(v.name, value, clicks[name][v.name]))
        found.append(RuleResponse(name, rule.holdout, rule.goal.window_ms, purchase.get(name, 0.0), tuple(variants)))
    return tuple(found)


def response_draw(seed: int, user: str, session: int, what: str) -> float:
    """Return a fixed uniform draw in [0, 1) for one potential response.

    A hash, not the user's random stream: adding responses leaves every other
    event of the data set exactly as it was.

    >>> response_draw(7, "u1", 3, "purchase") == response_draw(7, "u1", 3, "purchase")
    True
    """
    digest = hashlib.blake2b(f"{seed}\x00{user}\x00{session}\x00{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def response_delay_ms(trigger_ms: int, next_start_ms: int | None, end_ms: int, draw: float) -> int | None:
    """Return when a response after a trigger at ``trigger_ms`` happens, or None if it cannot.

    Between 1 minute and 24 hours after the trigger, at least a session gap
    before the customer's next session (else the two would be one session),
    and before ``end_ms`` (the end of the written period).

    >>> response_delay_ms(0, None, 10**12, 0.0)
    60000
    >>> response_delay_ms(0, 2 * 60_000 + GAP_MS, 10**12, 0.5) is None
    True
    """
    latest = trigger_ms + _MAX_DELAY_MS
    if next_start_ms is not None:
        latest = min(latest, next_start_ms - GAP_MS - _MINUTE_MS)
    latest = min(latest, end_ms - _MINUTE_MS)
    earliest = trigger_ms + _MINUTE_MS
    if latest <= earliest:
        return None
    return earliest + int((latest - earliest) * draw)


def response_tag(specs: tuple[str, ...] | list[str]) -> str:
    """Return a short name for a set of response specs (for cached file names).

    >>> response_tag(["cart_abandonment=0.3"]) == response_tag(("cart_abandonment=0.3",))
    True
    """
    return hashlib.blake2b("\x00".join(sorted(specs)).encode(), digest_size=4).hexdigest()
