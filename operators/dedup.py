"""Drop repeated events: the same ``event_id`` for the same user within a window.

Guarantees: an id is remembered for ``window`` of event time after the event
it came with (measured against the user's latest event time), so a repeat
inside the window is always caught, in or out of order. Memory per user is
bounded twice: ids older than the window are forgotten as event time moves
on, and at most ``max_ids`` are kept (the oldest is forgotten first, so a bot
sending thousands of events an hour cannot grow state without bound).

Ids are kept in arrival order; expiry pops from the front and stops at the
first id still inside the window, so an id that arrived out of order may
outlive its window by at most the allowed lateness. That is cheaper than a
sorted structure and never forgets an id too early.

An id is remembered as a 64-bit digest (:func:`id_key`, BLAKE2b: stable
across processes, so a restored snapshot still catches repeats), with its
event time, in one packed array, the digests first and their times after
them: 16 bytes an id instead of about 130 for a dict entry holding the id's
string and an int (a user holds about 8 ids on the bench files), and one
array's header (80 bytes) instead of two. Two different ids of one user collide with a chance of
about ``n**2 / 2**65`` for ``n`` ids held (1e-12 at the 5,000-id cap).
A look-up scans the digests (about 20 ns an id), so a user holding more than
:data:`INDEXED` ids also keeps a set of them: a bot at the cap costs a set
look-up per event, not a 100-microsecond scan.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Final

__all__ = [
    "DedupConfig",
    "DedupState",
    "INDEXED",
    "id_key",
    "is_duplicate",
    "remember",
    "expire",
    "oldest_ms",
    "reindex",
    "from_seen",
    "from_pairs",
    "held_keys",
    "held_times",
]

#: Above this many ids, a user's digests are also kept in a set (see the module docstring).
INDEXED: Final = 32

#: An empty 64-bit BLAKE2b, copied for every id (never updated itself): a copy costs about
#: half of a new hasher, which parses its parameters and sets them up again.
_DIGEST = blake2b(digest_size=8)
#: Its ``copy`` and the digest's reading as a signed little-endian 64-bit int
#: (``int.from_bytes(digest, "little", signed=True)``), held as statics: compiled, each
#: is then one call, without a look-up of the name and of the method (and, for
#: ``int.from_bytes``, its keyword argument): about 900 of an id's 4,800 instructions.
_COPY: Final = _DIGEST.copy
_SIGNED: Final = struct.Struct("<q").unpack


@dataclass(frozen=True)
class DedupConfig:
    """How long and how many event ids to remember per user."""

    window_ms: int
    max_ids: int

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            msg = f"dedup window must be > 0 ms; got {self.window_ms} instead"
            raise ValueError(msg)
        if self.max_ids <= 0:
            msg = f"dedup max_ids must be > 0; got {self.max_ids} instead"
            raise ValueError(msg)


def _longs() -> array[int]:
    return array("q")


@dataclass(slots=True, init=False)
class DedupState:
    """Ids seen recently, oldest first: their digests (:func:`id_key`), then their event times (epoch ms)."""

    ids: array[int] = field(default_factory=_longs)
    """``n`` digests then their ``n`` times (:func:`held_keys`, :func:`held_times`): one array.
    Two arrays, ``keys`` and ``times``, before (pack14 branch: :func:`from_pairs`)."""
    index: set[int] | None = None
    """The digests as a set, while there are more than :data:`INDEXED`."""

    def __init__(self, ids: array[int] | None = None, index: set[int] | None = None) -> None:
        # Written out (init=False above): compiled by mypyc, the __init__ @dataclass generates
        # is interpreted and cost more than the rest of a new user's first event. The defaults
        # are the fields' (tests/operators/test_state_inits.py); None makes a factory's default.
        self.ids = _longs() if ids is None else ids
        self.index = index


def held_keys(state: DedupState) -> array[int]:
    """Return the digests held, oldest first (a copy)."""
    ids = state.ids
    return ids[: len(ids) >> 1]


def held_times(state: DedupState) -> array[int]:
    """Return the event times of the digests held, in the same order (a copy)."""
    ids = state.ids
    return ids[len(ids) >> 1 :]


def _joined(keys: list[int] | array[int], times: list[int] | array[int]) -> DedupState:
    state = DedupState(array("q", keys))
    state.ids.extend(times)
    reindex(state)
    return state


def id_key(event_id: str) -> int:
    """Return the 64-bit digest an event id is remembered by (the same in every process).

    >>> id_key("e1") == id_key("e1"), id_key("e1") == id_key("e2")
    (True, False)
    """
    hasher = _COPY()
    hasher.update(event_id.encode())
    key: int = _SIGNED(hasher.digest())[0]
    return key


def is_duplicate(state: DedupState, key: int) -> bool:
    """Return whether the id with digest ``key`` was already seen within the window.

    >>> state = DedupState()
    >>> cfg = DedupConfig(window_ms=1000, max_ids=10)
    >>> remember(state, cfg, id_key("e1"), 0)
    >>> is_duplicate(state, id_key("e1")), is_duplicate(state, id_key("e2"))
    (True, False)
    """
    index = state.index
    if index is not None:
        return key in index
    ids = state.ids
    return key in ids[: len(ids) >> 1]  # (a slice of digests only: a time never matches)


def remember(state: DedupState, cfg: DedupConfig, key: int, ts_ms: int) -> None:
    """Remember the id with digest ``key`` (not yet remembered); forget the oldest when over the cap."""
    ids = state.ids
    n = len(ids) >> 1
    ids.insert(n, key)
    ids.append(ts_ms)
    n += 1
    index = state.index
    if index is not None:
        index.add(key)
    elif n > INDEXED:
        state.index = set(ids[:n])
    if n > cfg.max_ids:
        if state.index is not None:
            state.index.discard(ids[0])
        del ids[n]  # (the oldest time, then the oldest digest)
        del ids[0]


def reindex(state: DedupState) -> None:
    """Keep the set of digests if and only if there are more than :data:`INDEXED` (after a bulk change)."""
    n = len(state.ids) >> 1
    state.index = set(state.ids[:n]) if n > INDEXED else None


def from_seen(former: dict[str, Any]) -> DedupState:
    """Return the state a snapshot of the former layout held (``seen``: id -> event time,
    in arrival order): the same ids as digests, in the same order (:data:`state.portable.UPGRADES`).

    >>> state = from_seen({"seen": {"e1": 5, "e2": 3}})
    >>> list(held_times(state)), is_duplicate(state, id_key("e2")), is_duplicate(state, id_key("e3"))
    ([5, 3], True, False)
    """
    seen: dict[str, int] = former["seen"]
    return _joined([id_key(event_id) for event_id in seen], list(seen.values()))


def from_pairs(former: dict[str, Any]) -> DedupState:
    """Return the state a snapshot of the two arrays' layout held (``keys``, ``times``):
    the same digests and times in one array (:data:`state.upgrades.UPGRADES`).

    >>> state = from_pairs({"keys": array("q", [7, 8]), "times": array("q", [5, 3]), "index": None})
    >>> list(state.ids), is_duplicate(state, 8), is_duplicate(state, 5)
    ([7, 8, 5, 3], True, False)
    """
    return _joined(former["keys"], former["times"])


def oldest_ms(state: DedupState) -> int | None:
    """Return the event time of the id that arrived first (the next to expire), if any."""
    ids = state.ids
    return ids[len(ids) >> 1] if ids else None


def expire(state: DedupState, cfg: DedupConfig, now_ms: int) -> None:
    """Forget ids whose event time is more than the window before ``now_ms``.

    >>> state = DedupState()
    >>> cfg = DedupConfig(window_ms=1000, max_ids=10)
    >>> for name, ts in (("a", 0), ("b", 500), ("c", 900)):
    ...     remember(state, cfg, id_key(name), ts)
    >>> expire(state, cfg, 1600)
    >>> list(held_times(state)), is_duplicate(state, id_key("c")), is_duplicate(state, id_key("b"))
    ([900], True, False)
    """
    ids = state.ids
    n = len(ids) >> 1
    cutoff = now_ms - cfg.window_ms
    if not n or ids[n] >= cutoff:
        return  # (most calls: the oldest id is still in the window; no iterator made)
    expired = 0
    for ts_ms in ids[n:]:
        if ts_ms >= cutoff:
            break
        expired += 1
    # Two slice deletions (often all of them, at a tick after a quiet spell): times, then digests.
    index = state.index
    if index is not None:
        index.difference_update(ids[:expired])
    del ids[n : n + expired]
    del ids[:expired]
    if index is not None and n - expired <= INDEXED:
        state.index = None
