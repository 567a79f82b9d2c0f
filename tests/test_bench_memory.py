"""scripts/bench_memory.py's deep sizes: what an object holds, each object counted once."""

from __future__ import annotations

import importlib
import sys
from array import array
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _bench_memory() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("bench_memory")
    finally:
        sys.path.remove(str(SCRIPTS))


def test_an_array_is_its_own_size_not_one_int_object_per_item() -> None:
    times = array("q", [1_700_000_000_000 + i for i in range(20)])
    assert _bench_memory().Sizer().size(times) == sys.getsizeof(times)


def test_a_shared_object_is_counted_in_the_first_walk_only() -> None:
    shared = [1_700_000_000_000, 1_700_000_000_001]
    one, two = (100, shared), (200, shared)  # (kept alive: a freed object's id can be reused)
    sizer = _bench_memory().Sizer()
    first, second = sizer.size(one), sizer.size(two)
    assert second == sys.getsizeof(two) + sys.getsizeof(200)
    assert first == sys.getsizeof(one) + sys.getsizeof(100) + sys.getsizeof(shared) + 2 * sys.getsizeof(shared[0])


def test_the_malloc_figures_see_small_objects_in_pymalloc_and_large_ones_in_malloc() -> None:
    bench = _bench_memory()
    before = bench.malloc_figures()
    small = [float(i) + 0.5 for i in range(20_000)]  # 24-byte floats: pymalloc's 32-byte class
    large = [bytes(600) + i.to_bytes(4, "little") for i in range(2_000)]  # above 512 bytes: malloc
    after = bench.malloc_figures()
    grown_blocks = after["pymalloc bytes in allocated blocks"] - before["pymalloc bytes in allocated blocks"]
    assert grown_blocks >= 20_000 * 32
    assert after[". in use"] - before[". in use"] + after["malloc mmap"] - before["malloc mmap"] >= 2_000 * 600
    del small[:]
    freed = bench.malloc_figures()
    assert freed["pymalloc bytes in allocated blocks"] < after["pymalloc bytes in allocated blocks"] - 19_000 * 32
    assert len(large) == 2_000
