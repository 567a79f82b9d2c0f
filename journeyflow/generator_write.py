"""Write a user's simulated sessions as contract lines, with noise and simulated responses.

Part of the generator (:mod:`journeyflow.generator`): the lines come out keyed by write
time, which the generator sorts; noise (duplicates, out-of-order, late and malformed lines)
is drawn per event from the user's own random stream.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import orjson

from journeyflow import response
from journeyflow.events import SESSION_EXCLUDED_TYPES
from journeyflow.generator_session import Step, order_props, session_stamps, simulate_session
from journeyflow.generator_time import HOUR_MS, SECOND_MS
from operators.goals import holdout_draw

if TYPE_CHECKING:
    from journeyflow.generator_user import User

__all__ = ["write_sessions"]

_INT_TS_SHARE = 0.2
_IDENTIFY_TYPES = ("login", "identify")

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


def write_sessions(user: User, until_ms: int, out: list[tuple[int, bytes]]) -> None:
    """Append ``(write_ms, line)`` for every session of the period starting before ``until_ms``."""
    starts = user.period_starts
    while len(user.sessions) < len(starts) and starts[len(user.sessions)] < until_ms:
        number = len(user.sessions)
        steps, revenue_cents = simulate_session(user, starts[number], number)
        # Only written sessions need times; the horizon only counts purchases.
        stamps = session_stamps(user, starts[number], len(steps))
        # Consent and forget are about rights, not behaviour: like the sessions operator,
        # the truth leaves them out of a session's bounds and count.
        counted = [ts for ts, step in zip(stamps, steps) if step[0] not in SESSION_EXCLUDED_TYPES]
        user.sessions.append((counted[0], counted[-1], revenue_cents > 0, len(counted)))
        user.last_ts = stamps[-1]
        _write(user, stamps, steps, out)
        if user.shared.config.responses:
            _respond(user, number, steps, counted[-1], out)


def _respond(user: User, number: int, steps: list[Step], end_ms: int, out: list[tuple[int, bytes]]) -> None:
    """Write treated customers' responses to the cart-abandonment trigger this session fires.

    See :mod:`journeyflow.response`. Only sessions the engine sees whole
    (identified user, no login, consent or erasure in or before it) count.
    """
    if not user.identified or number in (user.identify_session, user.forget_session):
        return
    # The next session's refusal can reach the engine before this session closes
    # (nothing else of the user's comes in between): it then drops the session unfired.
    if user.opt_out_session != -1 and user.opt_out_session <= number + 1:
        return
    catalogue = user.shared.catalogue
    carted = {props["product_id"] for kind, props, _, _ in steps if kind == "add_to_cart" and props is not None}
    abandoned = [p for p in user.cart if catalogue.view_props[p]["product_id"] in carted]
    if not abandoned:
        return
    config = user.shared.config
    fmt = user.shared.formatter.format
    trigger_ms = end_ms + response.GAP_MS
    starts = user.period_starts
    next_start = starts[number + 1] if number + 1 < len(starts) else None
    for rule in config.responses:
        draw = functools.partial(_rule_draw, config.seed, user.user_id, number, rule.rule)
        at = response.response_delay_ms(trigger_ms, next_start, user.shared.period_end_ms, draw("when"))
        occasion: dict[str, Any] = {
            "rule": rule.rule,
            "trigger_ts": fmt(trigger_ms),
            "held_out": holdout_draw(rule.rule, user.user_id) < rule.holdout,
            "purchase": at is not None and draw("purchase") < rule.purchase,
            "clicks": [v.name for v in rule.variants if at is not None and draw(v.name) < v.chance],
            "written": False,
        }
        user.occasions.append(occasion)
        if at is None or occasion["held_out"] or not (occasion["purchase"] or occasion["clicks"]):
            continue
        occasion["written"] = True
        lines: list[tuple[str, dict]] = [
            ("email_click", {"campaign": v.campaign}) for v in rule.variants if v.name in occasion["clicks"]
        ]
        if occasion["purchase"] and all(p in user.cart for p in abandoned):
            basket = {p: user.cart.pop(p) for p in abandoned}
            lines.append(("purchase", order_props(user, basket, sum(catalogue.price_cents[p] * q for p, q in basket.items()))))
        for offset, (kind, props) in enumerate(lines):
            ts = at + offset * 10 * SECOND_MS
            user.serial += 1
            context = user.web_context if kind == "purchase" else user.email_context
            event = _event(user, user.id_prefix + str(user.serial), kind, fmt(ts), props, context, None)
            out.append((ts, orjson.dumps(event)))
            user.events += 1
            user.last_ts = ts


def _rule_draw(seed: int, user_id: str, number: int, rule: str, what: str) -> float:
    """The seeded draw of one response of ``user_id`` to ``rule`` after session ``number``."""
    return response.response_draw(seed, user_id, number, f"{rule}:{what}")


def _write(user: User, stamps: list[int], steps: list[Step], out: list[tuple[int, bytes]]) -> None:
    """Serialise one session and append its lines, noise included, keyed by write time."""
    random_ = user.rng.random
    dumps = orjson.dumps
    fmt = user.shared.formatter.format
    append = out.append
    dup_cut, ooo_cut, late_cut, bad_cut = user.shared.noise_cuts
    id_prefix = user.id_prefix
    user_id = user.user_id
    # Known users are identified from the start; anonymous ones (and second devices) take
    # the general path.
    known = not user.anonymous and not user.on_second
    serial = user.serial
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
            event = _event(user, id_prefix + str(serial), kind, ts_value, props, context, traits)
        line = dumps(event)
        draw = random_()
        if draw >= bad_cut:
            append((ts, line))
        elif draw < dup_cut:
            user.duplicates += 1
            append((ts, line))
            append((ts + SECOND_MS + int(random_() * 299 * SECOND_MS), line))
        elif draw < ooo_cut:
            user.out_of_order += 1
            append((ts + 30 * SECOND_MS + int(random_() * 270 * SECOND_MS), line))
        elif draw < late_cut:
            user.late += 1
            append((ts + HOUR_MS + int(random_() * 2 * HOUR_MS), line))
        else:
            user.malformed += 1
            append((ts, line))
            append((ts + 1, _malformed(user, event, line)))
    user.serial = serial
    user.events += len(steps)


def _event(
    user: User, event_id: str, kind: str, ts_value: int | str, props: dict | None, context: dict, traits: dict | None
) -> dict:
    """Build an event dict in the general case: anonymous ids, login, no properties, traits."""
    event: dict = {"event_id": event_id, "type": kind}
    second = user.on_second
    device = user.second_id if second else user.anonymous_id
    if kind in _IDENTIFY_TYPES:
        event["user_id"] = user.user_id
        event["anonymous_id"] = device
        if second:
            user.second_identified = True
        else:
            user.identified = True
    elif user.second_identified if second else user.identified:
        event["user_id"] = user.user_id
        if user.anonymous or second:
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


def _malformed(user: User, event: dict, line: bytes) -> bytes:
    """Return a broken variant of ``event`` that the contract sends to the dead letters."""
    kind = _MALFORMED_KINDS[int(user.rng.random() * len(_MALFORMED_KINDS))]
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
