"""One simulated customer: who they are and the plan of their sessions, drawn up front.

Part of the generator (:mod:`journeyflow.generator`): :mod:`journeyflow.generator_session`
simulates a session of the plan and :mod:`journeyflow.generator_write` writes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from journeyflow.generator_personas import PERSONA_CUM, PERSONAS, Persona
from journeyflow.generator_session import simulate_session
from journeyflow.generator_shop import APP_DEVICES, CATEGORIES, FAVOURITE_SHARE, WEB_DEVICES, Catalogue
from journeyflow.generator_time import DAY_MS, NEW_VISITOR_WINDOW_MS, SPACING_MS, TsFormatter, one_start, session_starts

if TYPE_CHECKING:
    from journeyflow.generator import GeneratorConfig

__all__ = ["Shared", "User"]

_CONSENT_ACCEPT_SHARE = 0.05
_CHURNER = "churner"
_NEW_VISITOR = "new_visitor"


@dataclass(frozen=True, slots=True)
class Shared:
    """What every user of one :func:`generate` call reads."""

    config: GeneratorConfig
    catalogue: Catalogue
    formatter: TsFormatter
    period_start_ms: int
    period_end_ms: int
    horizon_end_ms: int
    # Cut points of the one uniform draw per event: below the first a duplicate follows, then
    # out-of-order, then late, then a malformed line follows; above the last nothing happens.
    noise_cuts: tuple[float, float, float, float]
    personas: tuple[Persona, ...] = PERSONAS
    persona_cum: tuple[float, ...] = PERSONA_CUM


class User:
    """One simulated customer: a plan drawn up front, then its sessions one by one."""

    def __init__(self, shared: Shared, index: int) -> None:
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
        self.favourites = tuple(rng.sample(range(len(CATEGORIES)), rng.choice((1, 1, 2, 2, 3))))
        self.favourite_scale = len(self.favourites) / FAVOURITE_SHARE
        self.pools = shared.catalogue.pools[persona.price]
        # Squaring a uniform draw favours the front of the pool: popularity for "any" shoppers;
        # bargain hunters and premium buyers pick evenly within their price band.
        self.pool_skew = 2.0 if persona.price == "any" else 1.0
        self.web_share = rng.choice((0.9, 0.6, 0.2))
        device = rng.choice(WEB_DEVICES)
        self.web_context = {"channel": "web", "device": device}
        self.app_context = {"channel": "app", "device": rng.choice(APP_DEVICES)}
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
    def _plan(rng: random.Random, shared: Shared, persona: Persona) -> tuple[list[int], list[int]]:
        """Draw the session starts of the period (at least one) and of the horizon."""
        first, end, horizon_end = shared.period_start_ms, shared.period_end_ms, shared.horizon_end_ms
        rate = persona.sessions_per_day * rng.lognormvariate(0.0, 0.35)
        returns = rng.random() >= persona.lapse
        if persona.name == _NEW_VISITOR:
            period = [one_start(rng, max(first, end - NEW_VISITOR_WINDOW_MS), end)]
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                start = period[-1] + SPACING_MS + int(rng.random() * 4 * DAY_MS)
                if start < end:
                    period.append(start)
            horizon = session_starts(rng, rate, end, horizon_end) if returns else []
        elif persona.name == _CHURNER:
            quit_ms = first + int((end - first) * (0.2 + 0.5 * rng.random()))
            period = session_starts(rng, rate, first, quit_ms) or [one_start(rng, first, quit_ms)]
            horizon = []
        else:
            starts = session_starts(rng, rate, first, horizon_end)
            period = [s for s in starts if s < end] or [one_start(rng, first, end)]
            horizon = [s for s in starts if s >= end] if returns else []
        horizon = [s for s in horizon if s >= period[-1] + SPACING_MS]
        return period, horizon

    @property
    def next_start(self) -> int | None:
        """Return the start of the next unwritten session of the period, or None when done."""
        written = len(self.sessions)
        return self.period_starts[written] if written < len(self.period_starts) else None

    def truth_row(self) -> bytes:
        """Simulate the horizon and return this user's ground truth as one JSON object."""
        fmt = self.shared.formatter.format
        purchases = revenue_cents = 0
        for start in self.horizon_starts:
            _, cents = simulate_session(self, start, None)
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
