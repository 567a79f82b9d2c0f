"""The replay's clock: ticks woven into the merged input as event time passes, and links followed.

Split from :mod:`flows.files` (which reads and merges the input files and is
the replay's bytewax source): :func:`replay_items` turns the merged events
into what the source emits, deterministically (ticks depend only on the input,
never on the wall clock), and :class:`ReplayClock` says how often users hear
that time passed. ``flows.files`` re-exports both, where the replay, its
processes and the benchmarks import them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from journeyflow.events import IDENTITY_TYPES, DeadLetter, Event
from journeyflow.step_records import Expect, Finish, Tick

if TYPE_CHECKING:
    from flows.files import ReplayProgress

__all__ = ["RUN_END", "ReplayClock", "Owned", "replay_items"]


class _RunEnd:
    """The type of :data:`RUN_END` (its repr names it in a failing test)."""

    def __repr__(self) -> str:
        return "RUN_END"


RUN_END: Any = _RunEnd()
"""Where a replay's source must end a batch (:func:`replay_items` with ``finish``); never emitted."""


@dataclass(frozen=True)
class ReplayClock:
    """How a replay tells users that event time passed (see :class:`Tick`).

    Every ``tick_ms`` of event time (the merged input's latest time), each
    user seen within the last ``window_ms`` gets a tick; at the end, every
    user gets a last tick at the last event time (then the flow's end of
    input, or each key's Finish before it, finishes everyone as of that time).
    """

    tick_ms: int
    window_ms: int
    link_idle_ms: int
    """A device link is forgotten after this much silence of the device (as the device step does)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayClock:
        """Return the clock of a replay with ``settings``."""
        return cls(
            tick_ms=settings.replay.tick_s * 1000,
            window_ms=settings.replay.tick_window_s * 1000,
            link_idle_ms=settings.identity.link_idle_s * 1000,
        )


class Owned(dict[str, bool]):
    """Whether a key's first keyed step runs in this process (a cluster's share), remembered per key."""

    def __init__(self, mine: Callable[[str], bool], *, letters: bool) -> None:
        super().__init__()
        self.mine = mine
        self.letters = letters
        """Whether this process keeps the dead letters (they have no key)."""

    def __missing__(self, key: str) -> bool:
        owned = self[key] = self.mine(key)
        return owned


def replay_items(
    items: Iterable[Event | DeadLetter],
    clock: ReplayClock,
    progress: ReplayProgress,
    *,
    finish: bool = False,
    owned: Owned | None = None,
) -> Iterator[Any]:
    """Yield ``items`` with the replay's ticks woven in.

    Deterministic: ticks depend only on the input, never on the wall clock.
    Events and ticks carry their position (``seq``), so a step that receives
    one user's items along two paths applies those that arrive together in
    input order (see :func:`operators.in_order.in_input_order`).

    Links are followed here as the device step follows them (``login`` /
    ``identify`` links, the latest wins, ``link_idle_ms`` of silence forgets):
    a linked device's events go straight to its customer, marked with the
    customer as ``user``; each login goes to its device, and an
    :class:`Expect` tells the customer where in the input it stands (see
    :func:`operators.in_order.in_input_order`). Ticks go to the keys that hold
    state: customers, and anonymous devices not linked (``Tick.device``).

    With ``finish`` (a replay in one worker), after the last ticks every key
    that may hold state gets a :class:`Finish`: the device step's keys first,
    then the customers', each in key order (the order in which bytewax's end
    of input would have finished them: the models' clusters learn from the
    final rows in that order). :data:`RUN_END` marks where the source must end
    a batch, so that the models learn every label of the last ticks before
    they score any final row, and every device's final row before the first
    customer's (``progress.finishing`` says from when to look for it).

    With ``owned`` (one process of a cluster, :mod:`flows.replay_shares`), only
    the items whose first keyed step (that of
    :func:`flows.replay_shares.first_key`) runs in this process are yielded,
    and the dead letters if ``owned.letters``; every item still takes its
    position, so each kept item has the position it has in one process, and
    ``progress.users`` counts this process's keys. The others' events and ticks
    are never built: deciding here costs a dict lookup per item.
    """
    recent: dict[str, int] = {}  # key -> latest event time, least recently seen first
    devices: set[str] = set()  # keys that are anonymous devices
    linked: dict[str, tuple[str, int]] = {}  # device -> (its customer, the device's latest event time)
    next_tick: int | None = None
    last_ts: int | None = None
    seq = itertools.count(1)
    for item in items:
        expect = None
        if isinstance(item, Event):
            ts = item.ts_ms
            if next_tick is None:
                next_tick = (ts // clock.tick_ms + 1) * clock.tick_ms
            while ts >= next_tick:
                yield from _ticks(recent, devices, next_tick, next_tick - clock.window_ms, seq, owned)
                next_tick += clock.tick_ms
            position = next(seq)
            key = item.user
            first = None  # the first keyed step's key when it is not the item's own
            if item.user_id is None:
                link = linked.get(key)
                if link is not None and ts - link[1] > clock.link_idle_ms:
                    del linked[key]
                    link = None
                if link is None:
                    devices.add(key)
                else:
                    linked[key] = (link[0], max(ts, link[1]))
                    key = link[0]
            elif item.anonymous_id is not None and item.type in IDENTITY_TYPES:
                device = item.anonymous_id
                seen = max(ts, linked[device][1]) if device in linked else ts
                linked[device] = (item.user_id, seen)
                expect = Expect(item.user_id, position)
                first = device
            # Re-inserting moves the key to the end: the dict stays in recency order.
            recent.pop(key, None)
            recent[key] = ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
            # A login's first step is its device's (its Expect goes to the customer).
            if owned is None or owned[key if first is None else first]:
                # _make of a spliced tuple: half the cost of _replace, on every event.
                yield Event._make((item[0], item[1], key, *item[3:-1], position))
            if expect is not None and (owned is None or owned[expect.user]):
                yield expect
        elif owned is None or owned.letters:
            yield item
    progress.last_ts_ms = last_ts
    progress.users = len(recent) if owned is None else sum(1 for key in recent if owned[key])
    if last_ts is not None:
        # Everyone learns what time it is, so that every label that can be
        # known is learned before anyone's final scores are taken (at the key's
        # Finish, in a later batch, or at bytewax's end of input after every item).
        for key in recent:
            position = next(seq)
            if owned is None or owned[key]:
                yield Tick(last_ts, key, position, key in devices, last=True)
        if finish:
            progress.finishing = True
            yield RUN_END
            yield from (Finish(key, next(seq), True) for key in sorted(devices.union(linked)))
            yield RUN_END
            yield from (Finish(key, next(seq)) for key in sorted(k for k in recent if k not in devices))


def _ticks(
    recent: dict[str, int], devices: set[str], at_ms: int, since_ms: int, seq: Iterator[int], owned: Owned | None
) -> Iterator[Tick]:
    for key in reversed(recent):
        if recent[key] < since_ms:
            break
        position = next(seq)
        if owned is None or owned[key]:
            yield Tick(at_ms, key, position, key in devices)
