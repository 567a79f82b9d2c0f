"""Records that flow between the dataflow's steps and never leave it.

Input side: :class:`RawRecord` (a message as the transport delivered it),
:class:`Tick` (a replay's announcement that time passed), :class:`Finish` (a
replay's end of one key's input) and :class:`EndOfInput` (a user's input is
over, told to the loop step). Between steps: :class:`Tally` (what a user's state
counted), the identity hand-off (:class:`Handoff`, :class:`Expect`,
:class:`Forward`) and :class:`UserUpdate` (the per-user step to the models and
the audience). The records that leave the dataflow are in :mod:`journeyflow.records`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["EndOfInput", "Expect", "Finish", "Forward", "Handoff", "RawRecord", "Tally", "Tick", "UserUpdate"]


class RawRecord(NamedTuple):
    """A message before parsing: its bytes, where it came from, its key."""

    data: bytes
    source: str
    key: str | None = None


class Tick(NamedTuple):
    """Sent by a replay to recently active users as event time passes (daily).

    It does for a replay what timers do for the live worker: sessions close,
    labels resolve, segments over time windows and idle users' scores are
    refreshed, as of ``ts_ms``, without waiting for the user's next event.
    A tick does not move the user's lateness watermark.
    """

    ts_ms: int
    user: str
    seq: int = 0
    """Position in the replay's input (see :attr:`journeyflow.events.Event.seq`)."""
    device: bool = False
    """``user`` is an anonymous device not known to be linked: for the device step."""
    last: bool = False
    """One of the replay's last ticks (at its last event time): the key's end of input follows,
    as of the same time, with nothing in between (:func:`flows.replay_clock.replay_items`)."""


class Finish(NamedTuple):
    """A replay's end of one key's input, sent after every last tick (:mod:`flows.replay_clock`).

    The key's step does what its end of input does, then lets the key go: the
    users finish in the source's batches instead of all at once in bytewax's
    end of input, so their final records never all exist together.
    """

    user: str
    seq: int = 0
    """Position in the replay's input, after every other item of the key."""
    device: bool = False
    """``user`` is a key of the device step (an anonymous device, linked or not)."""


class EndOfInput(NamedTuple):
    """A user's input is over (told to the loop step by each user's final update).

    ``ts_ms`` is the time the user was finished at: in a replay, its last
    event time; time-driven attribution windows are judged at that time.
    """

    ts_ms: int
    user: str


@dataclass(frozen=True, slots=True)
class Tally:
    """What one user's state counted, emitted when the state ends or the input does.

    A replay's summary adds these up; ``processed + duplicates`` of all users
    plus the dead letters must equal the messages read.
    """

    user_id: str
    processed: int
    duplicates: int
    skipped: int = 0
    """Events of users who refused personalization (counted in ``processed``)."""


class Handoff(NamedTuple):
    """A device's whole per-user state, handed to its customer at the link (internal).

    ``state`` is the device's journey state (``None``: nothing was known about
    it); ``event`` is the ``login`` / ``identify`` that made the link.
    """

    anonymous_id: str
    state: Any
    event: Any


class Expect(NamedTuple):
    """A replay's note to a customer: the item at ``seq`` reaches you through a device (internal).

    The replay knows the links, so it sends a linked device's events straight
    to the customer; only a ``login`` / ``identify`` goes through the device
    step (whose state it carries). This placeholder travels with the
    customer's own items, so the customer step can apply everything in input
    order whichever path is faster (see :func:`operators.in_order.in_input_order`).
    """

    user: str
    seq: int


class Forward(NamedTuple):
    """An item the device step sends on to the customer step, keyed by ``user`` (internal)."""

    user: str
    item: Any


@dataclass(slots=True)
class UserUpdate:
    """What the per-user step tells the steps after it (internal, never output).

    ``kind`` is ``update`` (the profile's segments changed or a score is due),
    ``final`` (end of input: ``profile`` holds the whole profile), ``erase``
    (a ``forget`` event), ``opt_out`` (personalization refused) or ``merge``
    (an anonymous device joined a customer: its own profile is gone).
    ``values`` holds the contract's profile snapshot fields and the variables
    that rules evaluated downstream read.
    """

    user_id: str
    ts_ms: int
    kind: str
    cause: str
    cause_event_id: str | None
    segments: tuple[str, ...]
    values: dict[str, Any]
    profile: dict[str, Any] | None = None
    features: bytes | None = None
    """Model inputs as of ``ts_ms`` and later if nothing happens, packed rows
    (:func:`operators.features.scoring_vectors`): the models score the user."""
    cluster_features: dict[str, float] | None = None
    """Behaviour vector as of ``ts_ms``: the user is placed in a cluster."""
    learn_cluster: bool = False
    """The clusters learn from ``cluster_features`` (at a session's close)."""
    examples: tuple[Any, ...] = ()
    """Labelled past states (:class:`operators.labels.Example`) to learn from."""
    aliases: tuple[str, ...] = ()
    """On ``erase``: the anonymous ids linked to the user, whose aliases go too."""
    scores: dict[str, Any] | None = None
    """Set by the models step: propensity, churn risk, cluster, model version.

    The only field written after construction (the update is not frozen, to
    spare a copy per update): each update belongs to the step holding it."""

    def drop_model_inputs(self) -> None:
        """Forget what only the models read (``features``, ``cluster_features``, ``examples``).

        Called once the models have scored the update: what is left is what
        the steps after the models read. In a cluster the scored update
        crosses back to its user's worker, pickled: the five feature rows are
        about three quarters of its bytes (2.2 KB an update on the bench file).

        >>> u = UserUpdate("u1", 1, "update", "event", None, (), {}, features=({"a": 1.0},), examples=(1,))
        >>> u.drop_model_inputs(); (u.features, u.cluster_features, u.examples)
        (None, None, ())
        """
        self.features = None
        self.cluster_features = None
        self.examples = ()
