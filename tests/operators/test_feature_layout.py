"""The model features' names and packed layout (operators/feature_layout.py)."""

from __future__ import annotations

import struct

import pytest

from operators import feature_layout as layout
from operators.feature_layout import PACKED, pack, pack_rows, rows_as_dicts, unpack, unpack_rows


def _vector(offset: float = 0.0) -> dict[str, float]:
    return {name: n + offset + 0.125 for n, name in enumerate(PACKED)}


def test_a_row_is_the_classifier_features_then_the_prior_as_doubles() -> None:
    assert PACKED == layout.CLASSIFIER_FEATURES + layout.PRIOR_STATS
    assert len(set(PACKED)) == len(PACKED)
    data = pack(_vector())
    assert len(data) == 8 * len(PACKED)
    # Little-endian doubles in PACKED order: readable without this module.
    assert struct.unpack(f"<{len(PACKED)}d", data) == tuple(_vector().values())


def test_positions_name_the_values_they_point_at() -> None:
    row = unpack_rows(pack(_vector()))[0]
    positions = {
        "bg_sessions_x": layout.BG_SESSIONS_X,
        "bg_sessions_tx": layout.BG_SESSIONS_TX,
        "bg_purchases_x": layout.BG_PURCHASES_X,
        "bg_purchases_tx": layout.BG_PURCHASES_TX,
        "bg_age": layout.BG_AGE,
        "days_since_last_seen": layout.DAYS_SINCE_LAST_SEEN,
    }
    for name, position in positions.items():
        assert row[position] == _vector()[name], name


def test_rows_round_trip_in_order() -> None:
    vectors = [_vector(10.0 * k) for k in range(3)]
    data = pack_rows(vectors)
    assert len(data) == 3 * 8 * len(PACKED)
    assert rows_as_dicts(data) == vectors
    assert [unpack(data[i * 8 * len(PACKED) : (i + 1) * 8 * len(PACKED)]) for i in range(3)] == vectors
    assert pack_rows([]) == b"" and unpack_rows(b"") == []


def test_a_vector_missing_a_feature_does_not_pack() -> None:
    vector = _vector()
    del vector["bg_age"]
    with pytest.raises(KeyError):
        pack(vector)


def test_steady_and_timed_features_split_the_classifier_features() -> None:
    assert set(layout.STEADY_FEATURES) <= set(layout.CLASSIFIER_FEATURES)
    timed = {layout.CLASSIFIER_FEATURES[i] for i in layout.TIMED}
    assert timed.isdisjoint(layout.STEADY_FEATURES)
    assert timed | set(layout.STEADY_FEATURES) == set(layout.CLASSIFIER_FEATURES)
    assert list(layout.TIMED) == sorted(layout.TIMED)
