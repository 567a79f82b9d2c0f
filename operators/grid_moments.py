"""Grid moments of a sample of customers, followed until their horizon resolves: the stack's examples.

The question a score answers (``churn_risk``: no activity within the horizon;
``purchase_propensity``: a purchase within it) is asked of any known customer
at any moment. So the examples the stack (:mod:`operators.combiner`) learns
from are asked the same way: a bottom-k sample of customers (the ``SAMPLE``
with the smallest key hashes: uniform, deterministic, bounded; only the hash
is kept) is followed, and each of their weekly snapshots (the same grid for
every known customer, active or silent: :mod:`operators.labels`) becomes a
record when it reaches the models step with its first label, holding the
stack's inputs as they were at its moment (the models step scores the
snapshot along its own silent path, :mod:`operators.silent_path`).

A record is labelled from the customer's later updates: the last visit
(purchase) they carry falls after the moment and within the horizon (came
back; bought), or none by the horizon's end (stayed away; did not buy). It
is learned only once the whole horizon has passed: a return is known sooner
than its absence, and learning outcomes as they become known over-counts
returns while time is short. A silent customer is rescored at least every
``rescore_s`` (ticks in a replay, timers live), so silences resolve too.

Memory: per followed customer at most one pending record per grid moment of
a horizon, plus two (six for 30 days and weekly moments), of two small
tuples of inputs and a few numbers. A restart resumes it all: it is part of
the models step's snapshot.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from operators.bgnbd import _rank
from operators.combiner import Combiner

__all__ = ["SAMPLE", "GridMoments"]

#: Customers followed (a bottom-k sample of key hashes, like the prior's).
SAMPLE = 2000
_DAY_MS = 86_400_000


@dataclass
class GridMoments:
    """The followed customers and their pending grid moments (see the module docstring)."""

    followed: dict[int, list[list[Any]]] = field(default_factory=dict)
    """Hash -> pending records ``[moment_ms, returned_ms or None, bought_ms or None, churn inputs,
    propensity inputs, churn not learned yet, purchase not learned yet]``."""
    _heap: list[int] = field(default_factory=list)
    """Negated hashes of the followed: the root is the largest, the first to go."""

    def is_followed(self, user_id: str) -> bool:
        """Return whether ``user_id`` is one of the followed customers (changes nothing)."""
        return _rank(user_id) in self.followed

    def follows(self, user_id: str) -> bool:
        """Return whether ``user_id`` is (or now becomes) one of the followed customers."""
        rank = _rank(user_id)
        if rank in self.followed:
            return True
        if len(self.followed) >= SAMPLE:
            if rank > -self._heap[0]:
                return False
            del self.followed[-heapq.heappop(self._heap)]
        heapq.heappush(self._heap, -rank)
        self.followed[rank] = []
        return True

    def record(self, user_id: str, moment_ms: int, churn: tuple[float, ...], propensity: tuple[float, ...]) -> None:
        """Keep a followed customer's stack inputs at grid moment ``moment_ms`` until its horizon passes."""
        pending = self.followed[_rank(user_id)]
        if any(r[0] == moment_ms for r in pending):
            return  # (each moment once: its churn example arrives once, but be sure)
        pending.append([moment_ms, None, None, churn, propensity, True, True])

    def forget(self, user_id: str) -> None:
        """Stop following a customer (erasure, opt-out, merge) and drop their pending records."""
        rank = _rank(user_id)
        if self.followed.pop(rank, None) is not None:
            self._heap.remove(-rank)
            heapq.heapify(self._heap)

    def resolve(
        self, user_id: str, now_ms: int, days_seen: float, days_bought: float | None, combiner: Combiner, horizons_ms: dict[str, int], interval_ms: int
    ) -> None:
        """Learn what a followed customer's state at ``now_ms`` (days since the last visit, purchase) says of their pending moments."""
        pending = self.followed.get(_rank(user_id))
        if not pending:
            return
        churn_ms, purchase_ms = horizons_ms["churn"], horizons_ms["propensity"]
        last_seen = now_ms - days_seen * _DAY_MS
        bought = None if days_bought is None else now_ms - days_bought * _DAY_MS
        done = False
        for record in pending:
            moment = record[0]
            if record[1] is None and last_seen > moment:
                # The first update after a return carries it (a score at every session's close).
                record[1] = last_seen
            if record[2] is None and bought is not None and bought > moment:
                record[2] = bought
            # Learned only once the whole horizon has passed, whatever is known before.
            if record[5] and now_ms - moment >= churn_ms:
                combiner.learn("churn", record[3], record[1] is None or record[1] - moment > churn_ms)
                record[5] = False
            if record[6] and now_ms - moment >= purchase_ms:
                combiner.learn("propensity", record[4], record[2] is not None and record[2] - moment <= purchase_ms)
                record[6] = False
            done = done or not (record[5] or record[6])
        if done:
            pending[:] = [r for r in pending if r[5] or r[6]]
        # Every record waits at most a horizon, and an update comes at least every
        # rescore interval: this bound only matters if updates stop coming.
        keep = max(churn_ms, purchase_ms) // interval_ms + 2
        if len(pending) > keep:
            del pending[: len(pending) - keep]

    def report(self) -> dict[str, Any]:
        """Return how many customers are followed and how many moments wait."""
        return {"followed": len(self.followed), "pending": sum(len(p) for p in self.followed.values())}

