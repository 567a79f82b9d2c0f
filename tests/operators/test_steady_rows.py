"""Rows kept as the first row and the columns that move give back the same bytes."""

from __future__ import annotations

import math
import random
import struct
from array import array

from flows.step_configs import journey_config
from operators import features, profiles
from operators.feature_layout import PACKED
from operators.journey_state import JourneyState, view_of
from operators.rules import load_rules
from operators.steady_rows import compact, expand
from tests.helpers import settings

WIDTH = len(PACKED)
DAY = 86_400_000


def _rows(values: list[list[float]]) -> bytes:
    return b"".join(array("d", row).tobytes() for row in values)


def test_random_rows_come_back_bit_for_bit() -> None:
    rng = random.Random(16)
    odd = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e300, 0.1]
    for _ in range(300):
        width = rng.randint(1, 64)
        count = rng.randint(1, 8)
        first = [rng.choice(odd) if rng.random() < 0.3 else rng.random() for _ in range(width)]
        values = [first] + [[v if rng.random() < 0.7 else rng.choice([*odd, rng.random()]) for v in first] for _ in range(count - 1)]
        rows = _rows(values)
        packed = compact(rows, width)
        assert expand(packed, width) == rows
        moving = sum(1 for c in range(width) if any(struct.pack("<d", row[c]) != struct.pack("<d", first[c]) for row in values))
        assert len(packed) == 9 + width * 8 + (count - 1) * moving * 8


def test_a_signed_zero_is_a_moving_column() -> None:
    rows = _rows([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0]])
    assert len(compact(rows, 2)) == 9 + 16 + 2 * 8
    assert [math.copysign(1.0, v) for v in array("d", expand(compact(rows, 2), 2))] == [1.0, 1.0, -1.0, 1.0, 1.0, 1.0]


def test_shapes_the_header_cannot_say_are_kept_as_they_are() -> None:
    wide = _rows([[1.0] * 65, [2.0] * 65])
    many = _rows([[1.0]] * 256)
    for rows, width in ((wide, 65), (many, 1), (b"", 3), (_rows([[1.0, 2.0, 3.0]])[:-8], 3)):
        assert compact(rows, width) == b"\x00" + rows
        assert expand(compact(rows, width), width) == rows


def test_a_customers_scoring_rows_keep_only_the_columns_time_moves() -> None:
    cfg = journey_config(settings(), load_rules(settings().rules_path), timers=False)
    state = JourneyState(user="u1", max_ts_ms=5 * DAY)
    state.profile = profiles.new_profile(0)
    state.profile.events_total = 7
    rows = features.scoring_vectors(view_of(state, cfg, 5 * DAY), cfg.labels)
    packed = compact(rows, WIDTH)
    assert expand(packed, WIDTH) == rows
    assert len(packed) < len(rows) // 2
