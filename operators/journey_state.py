"""The per-user step's settings and state (:mod:`operators.journey` runs them).

Kept apart from the logic so the step's parts (:mod:`operators.updates`,
:mod:`operators.model_asks`, :mod:`operators.privacy`, :mod:`operators.handoff`,
:mod:`operators.decisions`, :mod:`operators.due`) can name them without
importing the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from journeyflow.event_parser import EventParser
from journeyflow.events import Event
from journeyflow.records import SNAPSHOT_FIELDS
from journeyflow.step_records import Handoff, RawRecord, Tick
from operators.dedup import DedupConfig, DedupState
from operators.labels import LabelConfig, Pending
from operators.profiles import Profile, ProfileConfig, View
from operators.recommend import RecommendConfig
from operators.rule_types import TriggerRule
from operators.segments import SegmentConfig
from operators.sessions import Session, SessionConfig
from operators.triggers import TriggerConfig
from operators.variables import PROFILE
from state.serde import decode_state

if TYPE_CHECKING:
    from operators.journey import JourneyLogic

__all__ = [
    "JourneyConfig", "JourneyState", "Inbound", "MAX_DEVICES", "NO_SESSIONS", "NO_COOLDOWNS", "NO_PENDING",
    "own_containers", "share_empties", "system_now_ms", "view_of",
]

Inbound = Event | RawRecord | Tick | Handoff
"""What the step accepts: parsed events, raw messages, a replay's
announcements that time passed, and a device's state handed over at a login
(:mod:`operators.identity`)."""

#: Anonymous devices remembered per customer (for erasure of their aliases).
MAX_DEVICES = 16

#: The open sessions, cooldowns and pending labels of every user who has none: shared, never
#: written (an empty list is 56 bytes, a dict 64; most users hold none of them most of the
#: time, e.g. at a replay's peak). A writer makes the user's own first (:func:`own_containers`,
#: or the ``is`` test where it appends) and the emptying ones give the shared one back
#: (:func:`share_empties`), as a profile's fields do (:mod:`operators.profile_windows`).
#: (Final: compiled, every reader takes the module's static instead of a look-up in its globals.)
NO_SESSIONS: Final[list[Session]] = []
NO_COOLDOWNS: Final[dict[str, int]] = {}
NO_PENDING: Final[list[Pending]] = []


def system_now_ms() -> int:
    """Return the wall clock in epoch milliseconds."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


@dataclass(frozen=True)
class JourneyConfig:
    """Settings of the per-user step (built once by the flow from the settings)."""

    parser: EventParser
    dedup: DedupConfig
    sessions: SessionConfig
    profiles: ProfileConfig
    segments: SegmentConfig
    triggers: TriggerConfig
    refresh_ms: int
    """Time-driven segments are re-evaluated at least this often (event time)."""
    labels: LabelConfig
    rescore_ms: int
    """An idle user's scores are refreshed at least this often (event time)."""
    late_variables: tuple[str, ...] = ()
    """Profile variables the steps after this one need (see :class:`UserUpdate`)."""
    update_variables: tuple[str, ...] = field(init=False)
    """What updates carry: the contract's snapshot fields, ``late_variables`` and
    the variables of the segments decided here (a segment change shows why)."""
    timers: bool = False
    """Schedule bytewax timers (live worker). Replays rely on event time only."""
    store_rows: bool = False
    """Emit :class:`ProfileRow` updates for a profile store (Redis)."""
    now_ms: Callable[[], int] = system_now_ms
    goal_types: frozenset[str] = frozenset()
    """Event types some trigger's conversion goal counts: sent on to the loop step."""
    recommend: RecommendConfig | None = None
    """Ask the recommender about product events (``None``: it is off)."""
    idle_release_ms: int = 0
    """A user idle this long (event time) publishes its final row and is forgotten; 0: never."""

    event_triggers: tuple[TriggerRule, ...] = field(init=False)
    event_rules: dict[str, tuple[TriggerRule, ...]] = field(init=False, compare=False)
    """Event type -> the event rules it matches, in rule order (types no rule names:
    :attr:`any_event_rules`), so an event no rule is about costs a look-up."""
    any_event_rules: tuple[TriggerRule, ...] = field(init=False)
    """The event rules without ``event_types``: they match every event."""
    session_triggers: tuple[TriggerRule, ...] = field(init=False)
    segment_getters: tuple[Callable[[View], Any], ...] = field(init=False)
    update_getters: tuple[Callable[[View], Any], ...] = field(init=False)
    """The getters of :attr:`update_variables`, in order."""
    update_positions: tuple[int, ...] = field(init=False)
    """For each of :attr:`update_variables`, where the segments' inputs hold it (its index
    in ``segments.variables``; -1: not a segment variable), so that an update made as of
    the time of a judgement takes those values from its inputs instead of reading them
    again (:func:`operators.updates.update`)."""

    def __post_init__(self) -> None:
        snapshot = tuple(n for n in SNAPSHOT_FIELDS if n in PROFILE)
        extra = tuple(dict.fromkeys(n for n in (*self.late_variables, *self.segments.variables) if n not in snapshot))
        object.__setattr__(self, "update_variables", snapshot + extra)
        rules = self.triggers.on("event")
        object.__setattr__(self, "event_triggers", rules)
        named = {t for r in rules if r.event_types is not None for t in r.event_types}
        by_type = {t: tuple(r for r in rules if r.event_types is None or t in r.event_types) for t in named}
        object.__setattr__(self, "event_rules", by_type)
        object.__setattr__(self, "any_event_rules", tuple(r for r in rules if r.event_types is None))
        object.__setattr__(self, "session_triggers", self.triggers.on("session_close"))
        object.__setattr__(self, "segment_getters", tuple(PROFILE[n].get for n in self.segments.variables))
        object.__setattr__(self, "update_getters", tuple(PROFILE[n].get for n in self.update_variables))
        judged = self.segments.variables
        positions = tuple(judged.index(n) if n in judged else -1 for n in self.update_variables)
        object.__setattr__(self, "update_positions", positions)

    @property
    def lateness_ms(self) -> int:
        return self.sessions.lateness_ms

    def build(self, resume_state: bytes | None) -> JourneyLogic:
        """Return the logic for one user, from its snapshot if there is one."""
        from operators.journey import JourneyLogic  # the step imports this module

        state = JourneyState() if resume_state is None else decode_state(resume_state, JourneyState)
        return JourneyLogic(self, state)


@dataclass(slots=True, init=False)
class JourneyState:
    """All that journeyflow keeps about one user."""

    version: int = 3
    """Layout of the code that wrote the state: 2 since dedup ids are digests, 3 since
    segments are a sorted tuple (older snapshots resume: :data:`state.portable.UPGRADES`)."""
    user: str = ""
    max_ts_ms: int | None = None
    """Latest event time seen; the watermark is this minus the allowed lateness."""
    offset_ms: int = 0
    """System time minus event time when ``max_ts_ms`` last advanced (timers)."""
    dedup: DedupState = field(default_factory=DedupState)
    sessions: list[Session] = field(default_factory=lambda: NO_SESSIONS)
    profile: Profile | None = None
    segments: tuple[str, ...] = ()
    """Segments decided here (over the profile alone), sorted: what updates carry as
    is (a tuple of one or two names is 64 bytes, a frozenset 216). A frozenset before
    version 3 (:func:`upgrade_version_2`)."""
    evaluated_ms: int = 0
    """Event time of the last segment evaluation."""
    cooldowns: dict[str, int] = field(default_factory=lambda: NO_COOLDOWNS)
    pending: list[Pending] = field(default_factory=lambda: NO_PENDING)
    """Past states waiting for their churn and propensity labels."""
    snapshot_ms: int = 0
    """Event time of the last labelled snapshot."""
    scored_ms: int = 0
    """Event time of the last score refresh."""
    opted_out: bool = False
    recent: tuple[tuple[str, int], ...] = ()
    """The recommender's view of the session: last products and times, latest first."""
    devices: tuple[str, ...] = ()
    """Anonymous ids linked to this customer, latest last (at most MAX_DEVICES)."""
    erased_devices: tuple[str, ...] = ()
    """Salted hashes of the devices of an erased customer: their events are not applied
    (counted as skipped) until the device logs in again. Kept after the erasure."""
    processed: int = 0
    duplicates: int = 0
    skipped: int = 0

    def __init__(
        self,
        version: int = 3,
        user: str = "",
        max_ts_ms: int | None = None,
        offset_ms: int = 0,
        dedup: DedupState | None = None,
        sessions: list[Session] | None = None,
        profile: Profile | None = None,
        segments: tuple[str, ...] = (),
        evaluated_ms: int = 0,
        cooldowns: dict[str, int] | None = None,
        pending: list[Pending] | None = None,
        snapshot_ms: int = 0,
        scored_ms: int = 0,
        opted_out: bool = False,
        recent: tuple[tuple[str, int], ...] = (),
        devices: tuple[str, ...] = (),
        erased_devices: tuple[str, ...] = (),
        processed: int = 0,
        duplicates: int = 0,
        skipped: int = 0,
    ) -> None:
        # Written out (init=False above): compiled by mypyc, the __init__ @dataclass generates
        # is interpreted and cost more than the rest of a new user's first event. The defaults
        # are the fields' (tests/operators/test_state_inits.py); None makes a factory's default.
        self.version = version
        self.user = user
        self.max_ts_ms = max_ts_ms
        self.offset_ms = offset_ms
        self.dedup = DedupState() if dedup is None else dedup
        self.sessions = NO_SESSIONS if sessions is None else sessions
        self.profile = profile
        self.segments = segments
        self.evaluated_ms = evaluated_ms
        self.cooldowns = NO_COOLDOWNS if cooldowns is None else cooldowns
        self.pending = NO_PENDING if pending is None else pending
        self.snapshot_ms = snapshot_ms
        self.scored_ms = scored_ms
        self.opted_out = opted_out
        self.recent = recent
        self.devices = devices
        self.erased_devices = erased_devices
        self.processed = processed
        self.duplicates = duplicates
        self.skipped = skipped


def own_containers(state: JourneyState) -> None:
    """Give ``state`` open sessions, cooldowns and pending labels of its own where it shares
    the empty ones (before a writer that may add to any of them: a merge)."""
    if state.sessions is NO_SESSIONS:
        state.sessions = []
    if state.cooldowns is NO_COOLDOWNS:
        state.cooldowns = {}
    if state.pending is NO_PENDING:
        state.pending = []


def share_empties(state: JourneyState) -> None:
    """Put the shared empties back where ``state``'s own open sessions, cooldowns or pending
    labels are empty (after what may empty them: closes, prunes, labels settled, a merge)."""
    if not state.sessions:
        state.sessions = NO_SESSIONS
    if not state.cooldowns:
        state.cooldowns = NO_COOLDOWNS
    if not state.pending:
        state.pending = NO_PENDING


def upgrade_version_2(former: dict[str, Any]) -> JourneyState:
    """Return the state a snapshot of version 2 or older held, in today's layout (segments
    a sorted tuple), for :data:`state.portable.UPGRADES`.

    >>> upgrade_version_2({"version": 1, "user": "u1", "segments": frozenset({"b", "a"})}).segments
    ('a', 'b')
    """
    return JourneyState(**{**former, "version": 3, "segments": tuple(sorted(former["segments"]))})


def view_of(state: JourneyState, cfg: JourneyConfig, now_ms: int) -> View:
    """Return the user's profile as seen at ``now_ms`` (the profile must exist)."""
    return View(state.profile, cfg.profiles, now_ms, len(state.sessions))  # type: ignore[arg-type]
