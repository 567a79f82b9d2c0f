"""What the per-user step tells the steps after it: updates, store rows, counts.

One place builds each record the step emits about a user, from the user's
state as it is when called (values are read then, not later).
"""

from __future__ import annotations

from typing import Any, Final

from journeyflow.records import ProfileRow
from journeyflow.step_records import Tally, UserUpdate
from operators.journey_state import JourneyConfig, JourneyState, view_of
from operators.profiles import View
from operators.views import to_fields

__all__ = ["update", "final", "row", "tallies"]

# What every update reads from modules that are not compiled, held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_USER_UPDATE: Final = UserUpdate
_PROFILE_ROW: Final = ProfileRow
_TALLY: Final = Tally


def update(
    state: JourneyState,
    cfg: JourneyConfig,
    ts_ms: int,
    kind: str,
    cause: str,
    cause_event_id: str | None,
    view: View | None = None,
    profile: dict[str, Any] | None = None,
    inputs: tuple[Any, ...] | None = None,
    **models: Any,
) -> UserUpdate:
    """Return an update for the steps after this one; ``models`` adds features and examples.

    ``view`` adds the profile values updates carry (``cfg.update_variables``);
    without it the update carries segments only (an erasure, a refusal, a merge).
    ``inputs``: the segments' inputs read as of ``view`` (``cfg.segments.variables``),
    with nothing changed since: the values they hold are taken from them, not read again
    (the same getters on the same view: the same values).
    """
    values: dict[str, Any] = {}
    if view is not None:
        names = cfg.update_variables
        getters = cfg.update_getters
        if inputs is None:
            for i in range(len(names)):
                values[names[i]] = getters[i](view)
        else:
            positions = cfg.update_positions
            for i in range(len(names)):
                at = positions[i]
                values[names[i]] = inputs[at] if at >= 0 else getters[i](view)
        if view.profile.last_purchase_ms is None:
            values["recency_days"] = None
    return _USER_UPDATE(
        user_id=state.user,
        ts_ms=ts_ms,
        kind=kind,
        cause=cause,
        cause_event_id=cause_event_id,
        segments=state.segments,
        values=values,
        profile=profile,
        **models,
    )


def final(state: JourneyState, cfg: JourneyConfig, view: View, **models: Any) -> UserUpdate:
    """Return the user's final update (end of input, idle release): the whole profile as of ``view``.

    Its values are read from the profile's fields, computed once: each field
    is its variable's getter on the same view (``recency_days`` null before a
    purchase in both).
    """
    fields = to_fields(view)
    values = {name: fields[name] for name in cfg.update_variables}
    return _USER_UPDATE(
        user_id=state.user,
        ts_ms=view.now_ms,
        kind="final",
        cause="time",
        cause_event_id=None,
        segments=state.segments,
        values=values,
        profile=fields,
        **models,
    )


def row(state: JourneyState, cfg: JourneyConfig, now_ms: int) -> ProfileRow:
    """Return the user's profile store row as of ``now_ms`` (the profile must exist)."""
    return _PROFILE_ROW(state.user, now_ms, to_fields(view_of(state, cfg, now_ms)))


def tallies(state: JourneyState) -> list[Tally]:
    """Return the user's counts since the last report (and zero them), if there are any."""
    if not (state.processed or state.duplicates or state.skipped):
        return []
    tally = _TALLY(state.user, state.processed, state.duplicates, state.skipped)
    state.processed = state.duplicates = state.skipped = 0
    return [tally]
