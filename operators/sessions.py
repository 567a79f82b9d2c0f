"""Group one user's events into sessions separated by inactivity, in event time.

Two events belong to the same session when no more than ``gap`` of event time
separates them (a gap of exactly ``gap`` keeps the session going). Events may
arrive out of order within the allowed lateness, so a session only closes once
the user's watermark (latest event time minus the allowed lateness) is more
than ``gap`` past its last event: from then on no event that is not late can
join it. Until then a user can have more than one open session, and a late
event that bridges two of them merges them. The outcome is the same as if
every event had arrived in order.

Memory: only open sessions are kept (at most ``lateness / gap + 2`` of them);
a closed session leaves as a :class:`SessionSummary`. ``consent`` and
``forget`` events are not part of sessions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from journeyflow.events import Event
from journeyflow.records import SessionSummary

__all__ = [
    "SessionConfig",
    "Session",
    "add_event",
    "pop_closed",
    "next_close_ms",
    "session_id",
    "summarise",
]


#: An empty 64-bit BLAKE2b, copied for every session id (never updated itself; see operators.dedup).
_DIGEST: Final = hashlib.blake2b(digest_size=8)
# A closed session's record class, held as a static: compiled, a name imported from a module
# that is not compiled is looked up in this module's globals dict at every use (about 120
# instructions each).
_SESSION_SUMMARY: Final = SessionSummary


@dataclass(frozen=True)
class SessionConfig:
    """Inactivity gap and lateness that decide when a session is over."""

    gap_ms: int
    lateness_ms: int
    max_carted: int = 50

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            msg = f"session gap must be > 0 ms; got {self.gap_ms} instead"
            raise ValueError(msg)
        if self.lateness_ms < 0:
            msg = f"allowed lateness must be >= 0 ms; got {self.lateness_ms} instead"
            raise ValueError(msg)


@dataclass(slots=True, init=False)
class Session:
    """An open session's bounds and counters."""

    start_ms: int
    end_ms: int
    events: int = 0
    page_views: int = 0
    product_views: int = 0
    add_to_cart: int = 0
    checkouts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    channel: str | None = None
    last_event_id: str = ""
    carted: list[str] = field(default_factory=list)
    """Products added to the cart during the session (cart abandonment)."""

    def __init__(
        self,
        start_ms: int = 0,
        end_ms: int = 0,
        events: int = 0,
        page_views: int = 0,
        product_views: int = 0,
        add_to_cart: int = 0,
        checkouts: int = 0,
        purchases: int = 0,
        revenue: float = 0.0,
        channel: str | None = None,
        last_event_id: str = "",
        carted: list[str] | None = None,
    ) -> None:
        # Written out (init=False above): compiled by mypyc, the __init__ @dataclass generates
        # is interpreted and cost more than the rest of a new user's first event. The defaults
        # are the fields' (tests/operators/test_state_inits.py); None makes a factory's default.
        # The fields without a default take 0 here: compiled, ``cls.__new__(cls)`` runs this
        # __init__, and a snapshot is decoded that way before its fields are set (state/portable.py).
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.events = events
        self.page_views = page_views
        self.product_views = product_views
        self.add_to_cart = add_to_cart
        self.checkouts = checkouts
        self.purchases = purchases
        self.revenue = revenue
        self.channel = channel
        self.last_event_id = last_event_id
        self.carted = [] if carted is None else carted


def _count(session: Session, event: Event, max_carted: int) -> None:
    session.events += 1
    if event.ts_ms >= session.end_ms:
        session.last_event_id = event.event_id
    kind = event.type
    if kind == "page_view":
        session.page_views += 1
    elif kind == "product_view":
        session.product_views += 1
    elif kind == "add_to_cart":
        session.add_to_cart += 1
        if event.product_id not in session.carted and len(session.carted) < max_carted:
            session.carted.append(event.product_id)  # type: ignore[arg-type]
    elif kind == "checkout_start":
        session.checkouts += 1
    elif kind == "purchase":
        session.purchases += 1
        session.revenue += event.revenue
    if session.channel is None:
        session.channel = event.channel


def _merge(into: Session, other: Session, max_carted: int) -> None:
    if other.end_ms > into.end_ms:
        into.last_event_id = other.last_event_id
    into.start_ms = min(into.start_ms, other.start_ms)
    into.end_ms = max(into.end_ms, other.end_ms)
    into.events += other.events
    into.page_views += other.page_views
    into.product_views += other.product_views
    into.add_to_cart += other.add_to_cart
    into.checkouts += other.checkouts
    into.purchases += other.purchases
    into.revenue += other.revenue
    into.channel = into.channel or other.channel
    for product in other.carted:
        if product not in into.carted and len(into.carted) < max_carted:
            into.carted.append(product)


def add_event(sessions: list[Session], cfg: SessionConfig, event: Event) -> bool:
    """Add ``event`` to the open session it belongs to; return whether it started one.

    ``sessions`` stays sorted by start. An event within ``gap`` of several
    open sessions merges them.

    >>> from journeyflow.events import Event
    >>> cfg = SessionConfig(gap_ms=2000, lateness_ms=0)
    >>> open_ = []
    >>> add_event(open_, cfg, Event("a", "page_view", "u", 0, "t"))
    True
    >>> add_event(open_, cfg, Event("b", "page_view", "u", 3000, "t"))
    True
    >>> [(s.start_ms, s.end_ms) for s in open_]
    [(0, 0), (3000, 3000)]
    >>> add_event(open_, cfg, Event("c", "page_view", "u", 1500, "t"))  # bridges both
    False
    >>> [(s.start_ms, s.end_ms, s.events) for s in open_]
    [(0, 3000, 3)]
    """
    ts = event.ts_ms
    gap = cfg.gap_ms
    if len(sessions) == 1:
        # The common case: one open session, and the event belongs to it.
        only = sessions[0]
        if only.start_ms - gap <= ts <= only.end_ms + gap:
            if ts > only.end_ms:
                only.end_ms = ts
            elif ts < only.start_ms:
                only.start_ms = ts
            _count(only, event, cfg.max_carted)
            return False
    touching = [s for s in sessions if s.start_ms - gap <= ts <= s.end_ms + gap]
    started = not touching
    if started:
        session = Session(start_ms=ts, end_ms=ts)
        sessions.append(session)
        sessions.sort(key=lambda s: s.start_ms)
    else:
        session = touching[0]
        for other in touching[1:]:
            _merge(session, other, cfg.max_carted)
            sessions.remove(other)
        session.start_ms = min(session.start_ms, ts)
        session.end_ms = max(session.end_ms, ts)
    _count(session, event, cfg.max_carted)
    return started


def pop_closed(sessions: list[Session], cfg: SessionConfig, watermark_ms: int | None) -> list[Session]:
    """Remove and return the sessions no future on-time event can join.

    ``watermark_ms`` is the user's latest event time minus the allowed
    lateness; ``None`` closes every session (end of input, erasure).
    """
    if watermark_ms is None:
        closed = list(sessions)
        sessions.clear()
        return closed
    # Open sessions never overlap, so the first one also ends first.
    if not sessions or sessions[0].end_ms + cfg.gap_ms >= watermark_ms:
        return []
    closed = [s for s in sessions if s.end_ms + cfg.gap_ms < watermark_ms]
    if closed:
        sessions[:] = [s for s in sessions if s.end_ms + cfg.gap_ms >= watermark_ms]
    return closed


def next_close_ms(sessions: list[Session], cfg: SessionConfig) -> int | None:
    """Return the user event time at which the first open session can close."""
    if not sessions:
        return None
    return min(s.end_ms for s in sessions) + cfg.gap_ms + cfg.lateness_ms + 1


def session_id(user: str, start_ms: int) -> str:
    """Return the deterministic id of the user's session starting at ``start_ms``.

    A user's sessions never overlap, so (user, start) is unique.

    >>> session_id("u42", 0) == session_id("u42", 0) != session_id("u42", 1)
    True
    """
    hasher = _DIGEST.copy()
    hasher.update(f"{user}\x00{start_ms}".encode())
    digest = hasher.hexdigest()
    return f"s-{digest}"


def summarise(session: Session, user: str) -> SessionSummary:
    """Return the output record of a closed session."""
    return _SESSION_SUMMARY(
        session_id=session_id(user, session.start_ms),
        user_id=user,
        start_ms=session.start_ms,
        end_ms=session.end_ms,
        events=session.events,
        page_views=session.page_views,
        product_views=session.product_views,
        add_to_cart=session.add_to_cart,
        checkouts=session.checkouts,
        purchases=session.purchases,
        revenue=session.revenue,
        channel=session.channel,
    )
