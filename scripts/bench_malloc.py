"""Where a process's resident bytes sit: glibc's malloc against pymalloc (``bench_memory.py --malloc``).

Objects up to 512 bytes live in pymalloc's pools (16 KB, in 1 MB arenas); larger ones come from
malloc. A pool is given back only when every block in it is free, so objects freed among live ones
stay resident as pymalloc's free blocks.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile

from bench_measure import rss_bytes  # type: ignore[import-not-found]

__all__ = ["malloc_figures", "malloc_report"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_figures() -> dict[str, int]:
    """Bytes by where they sit: glibc's ``mallinfo2`` and pymalloc's arenas (``sys._debugmallocstats``)."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    m = mallinfo2()
    found = {"malloc heap": m.arena, ". in use": m.uordblks, ". free": m.fordblks, "malloc mmap": m.hblkhd}
    with tempfile.TemporaryFile() as out:  # (it writes to the C stderr)
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()  # type: ignore[attr-defined]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode().split("arena map counts")[0]
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 5 and all(cell.isdigit() for cell in cells):  # class, size, pools, in use, free
            found[f"pymalloc free blocks of {cells[1]} B"] = int(cells[1]) * int(cells[4])
        elif "=" in line and "bytes" in line and "free " not in line:
            words = line.split("=")[0].replace("#", "").split()
            name = " ".join(words[1:] if words[0].isdigit() else words)  # ("59 arenas * 1048576 bytes/arena")
            found["pymalloc " + name] = int(line.split("=")[-1].strip().replace(",", ""))
    return found


def malloc_report(users: int, before: dict[str, int], rss_growth: int) -> None:
    """Print the growth of :func:`malloc_figures` since ``before``, per user seen."""
    per = max(1, users)
    print(f"\nwhere the RSS growth ({rss_growth / per:,.0f} B per user seen) sits, growth per user seen:")
    growth = {name: value - before.get(name, 0) for name, value in malloc_figures().items()}
    by_class = sorted([name for name in growth if name.startswith("pymalloc free blocks")], key=lambda n: -growth[n])
    for name, value in growth.items():
        if not name.startswith("pymalloc free blocks") or name in by_class[:6]:
            print(f"  {name:<45} {value / per:8,.0f}")
    # What of it is whole free pages malloc keeps (malloc_trim gives them back to the system).
    rss = rss_bytes()
    ctypes.CDLL(None).malloc_trim(0)
    print(f"  RSS given back by malloc_trim(0)              {(rss - rss_bytes()) / per:8,.0f}")
