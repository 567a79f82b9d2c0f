"""Each key's worker in a replay cluster: SipHash-1-3 in 32-bit halves equals the 64-bit definition."""

from __future__ import annotations

import random

import pytest

from flows.replay_owners import owner_worker, siphash13

_MASK = (1 << 64) - 1


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def _reference(data: bytes) -> int:
    """SipHash-1-3 with keys (0, 0) on whole 64-bit words, as the algorithm is written."""
    v = [0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573]

    def sip_round() -> None:
        v[0] = (v[0] + v[1]) & _MASK
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & _MASK
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & _MASK
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & _MASK
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    end = len(data) - len(data) % 8
    words = [int.from_bytes(data[i : i + 8], "little") for i in range(0, end, 8)]
    words.append(((len(data) & 0xFF) << 56) | int.from_bytes(data[end:], "little"))
    for word in words:
        v[3] ^= word
        sip_round()
        v[0] ^= word
    v[2] ^= 0xFF
    for _ in range(3):
        sip_round()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def test_the_halves_give_the_64_bit_hash_for_every_length_and_byte() -> None:
    rng = random.Random(18)
    # Every length across three words (the last block's length byte and padding), and the
    # extreme bytes, where a carry or a rotation between the halves would show.
    inputs = [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 40) for _ in range(20)]
    inputs += [b"\xff" * n for n in range(0, 40)] + [b"\x00" * n for n in range(0, 40)]
    assert [siphash13(data) for data in inputs] == [_reference(data) for data in inputs]


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_a_keys_worker_is_its_hash_with_rusts_str_terminator_modulo_the_workers(workers: int) -> None:
    keys = [f"user-{i}" for i in range(200)] + ["", "é", "models"]
    assert [owner_worker(key, workers) for key in keys] == [_reference(key.encode() + b"\xff") % workers for key in keys]
    assert {owner_worker(key, workers) for key in keys} == set(range(workers))
