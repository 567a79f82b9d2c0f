"""Checks every operators test shares: the per-user step's shared empty containers stay empty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from operators.journey_state import NO_COOLDOWNS, NO_PENDING, NO_SESSIONS


@pytest.fixture(autouse=True)
def _shared_empties_stay_empty() -> Iterator[None]:
    """Fail a test that writes into the empties every user without sessions, cooldowns or pending
    labels shares (a writer must make the user's own first: ``own_containers``); left written,
    they would give every later user of the process those sessions."""
    yield
    written = bool(NO_SESSIONS or NO_COOLDOWNS or NO_PENDING)
    # Emptied again, so that only the test that wrote them fails.
    NO_SESSIONS.clear()
    NO_COOLDOWNS.clear()
    NO_PENDING.clear()
    assert not written, "a shared empty container (journey_state.NO_SESSIONS, NO_COOLDOWNS, NO_PENDING) was written"
