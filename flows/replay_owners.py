"""Which worker of a bytewax cluster keeps a key's state: Rust's SipHash-1-3 of the key, in 32-bit halves.

Each process of a replay cluster asks this once for every key in the input
(:class:`flows.replay_clock.Owned`), the other processes' keys included. In
Python's unbounded ints a 64-bit SipHash cost about 10 us a key, a sixth of a
share's whole source (0.23 of 1.6 CPU s on the small benchmark file, measured
against the same share with its owners known in advance). Here each 64-bit
word is two 32-bit halves, so every value fits a native ``i64`` when the module
is compiled (``pyproject.toml``'s ``compiled`` list) and nothing overflows
when it is not: the same code gives the same hash both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # a type for mypyc (a native 64-bit int); mypy_extensions is not needed at run time
    from mypy_extensions import i64

__all__ = ["siphash13", "owner_worker"]

_LOW: Final = 0xFFFFFFFF


def _add(a_hi: i64, a_lo: i64, b_hi: i64, b_lo: i64) -> tuple[i64, i64]:
    """Return ``a + b`` modulo 2**64, as (high, low) halves."""
    lo = a_lo + b_lo
    return (a_hi + b_hi + (lo >> 32)) & _LOW, lo & _LOW


def _rotl(hi: i64, lo: i64, bits: i64) -> tuple[i64, i64]:
    """Return the 64-bit word (hi, lo) rotated left by ``bits`` (0 < bits < 32, or 32)."""
    if bits == 32:
        return lo, hi
    return ((hi << bits) | (lo >> (32 - bits))) & _LOW, ((lo << bits) | (hi >> (32 - bits))) & _LOW


def siphash13(data: bytes) -> int:
    """Return SipHash-1-3 of ``data`` with keys (0, 0): Rust's ``DefaultHasher::new()``.

    >>> hex(siphash13(b""))
    '0xd1fba762150c532c'
    """
    # v0..v3 as (high, low) halves of the initial constants with zero keys.
    h0: i64 = 0x736F6D65
    l0: i64 = 0x70736575
    h1: i64 = 0x646F7261
    l1: i64 = 0x6E646F6D
    h2: i64 = 0x6C796765
    l2: i64 = 0x6E657261
    h3: i64 = 0x74656462
    l3: i64 = 0x79746573
    length = len(data)
    end = length - length % 8
    words: list[tuple[i64, i64]] = []
    for i in range(0, end, 8):
        words.append((int.from_bytes(data[i + 4 : i + 8], "little"), int.from_bytes(data[i : i + 4], "little")))
    tail = int.from_bytes(data[end:], "little")
    words.append((((length & 0xFF) << 24) | (tail >> 32), tail & _LOW))
    compressions = len(words)
    # One round per word (compression), then 0xff into v2 and three rounds (finalization).
    for n in range(compressions + 3):
        if n < compressions:
            w_hi, w_lo = words[n]
            h3 ^= w_hi
            l3 ^= w_lo
        elif n == compressions:
            l2 ^= 0xFF
        h0, l0 = _add(h0, l0, h1, l1)
        h1, l1 = _rotl(h1, l1, 13)
        h1 ^= h0
        l1 ^= l0
        h0, l0 = _rotl(h0, l0, 32)
        h2, l2 = _add(h2, l2, h3, l3)
        h3, l3 = _rotl(h3, l3, 16)
        h3 ^= h2
        l3 ^= l2
        h0, l0 = _add(h0, l0, h3, l3)
        h3, l3 = _rotl(h3, l3, 21)
        h3 ^= h0
        l3 ^= l0
        h2, l2 = _add(h2, l2, h1, l1)
        h1, l1 = _rotl(h1, l1, 17)
        h1 ^= h2
        l1 ^= l2
        h2, l2 = _rotl(h2, l2, 32)
        if n < compressions:
            h0 ^= w_hi
            l0 ^= w_lo
    return (int(h0 ^ h1 ^ h2 ^ h3) << 32) | int(l0 ^ l1 ^ l2 ^ l3)


def owner_worker(key: str, worker_count: int) -> int:
    """Return the worker (cluster-wide index) bytewax keeps ``key``'s state on.

    >>> [owner_worker(k, 2) for k in ("u1", "u2", "models")]
    [0, 1, 0]
    """
    # A Rust ``str`` hashes as its bytes then 0xff (so "ab" + "c" differs from "a" + "bc").
    return siphash13(key.encode() + b"\xff") % worker_count
