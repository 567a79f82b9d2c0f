"""``scripts/bench.py --quick`` runs every measurement end to end and prints tables that explain themselves.

Not a timed test: it checks that the benchmark works and that its figures
hang together, never how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

TABLES = (
    "Files",
    "Speed, lines read per second",
    "CPU microseconds per input item by kind and step, small file",
    "CPU microseconds per input item by kind and step, large file",
    "Where a line's time goes",
    "Inside the journey step",
    "Memory, bytes per user",
    "Processes",
    "Machine load",
    "Targets (issue 8)",
)
PARTS = ("parse", "journey", "models", "audience", "recommender", "loop", "outputs")


def test_quick_bench_prints_every_table_and_consistent_figures(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--quick", "--workdir", str(tmp_path / "w"), "--json", str(figures_file)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    for title in TABLES:
        assert title in text, title
    # Every table is followed by its one-line explanation.
    assert text.count("  -> ") == len(TABLES)
    assert "QUICK RUN" in text

    # The saved figures print the same tables again without measuring anything.
    again = subprocess.run(
        [sys.executable, "scripts/bench.py", "--tables", str(figures_file)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )
    assert again.stdout == text

    figures = orjson.loads(figures_file.read_bytes())
    for label in ("small", "large"):
        f = figures["files"][label]
        lines = f["replay"]["lines"]
        # Every measurement read the same file, and the driven steps saw every line once.
        assert f["orjson"]["lines"] == f["engine"]["lines"] == f["parts"]["lines"] == lines > 0
        counts = f["parts"]["counts"]
        assert sum(n for k, n in counts.items() if k not in ("tick", "end of input")) == lines
        assert counts["end of input"] == f["parts"]["users"] == f["replay"]["users"]
        assert f["replay"]["status"] == 0 and f["replay"]["flow_start_seen"]
        # The models' scores taken (from the replay's summary): shown beside the file.
        assert isinstance(f["replay"]["models_scored"], int) and f["replay"]["models_scored"] >= 0
        for part in PARTS:
            assert sum(f["parts"]["seconds"][part].values()) > 0, part
        assert 0 < f["replay"]["gc_s"] < f["replay"]["wall_s"]
        # CPU time over wall time: one worker, with at most numpy's threads beside it on 2 cores.
        for name, share in figures["derived"][label]["cpu_share"].items():
            assert 0 < share <= 2.05, name
    probes = figures["files"]["small"]["probes"]
    assert probes["probes_missing"] == [] or all(":" in name for name in probes["probes_missing"])
    assert sum(probes["probes_s"].values()) > 0

    verdicts = {v["name"]: v for v in figures["verdicts"]}
    assert len(verdicts) == 5
    assert set(figures["derived"]) == {"small", "large"}
    rate = verdicts["lines/s, large file, 1 process"]
    assert rate["met"] == (rate["measured"] >= 15_000)
    share = verdicts["ticks + end of input, share of work"]
    assert 0 < share["measured"] < 1 and share["met"] == (share["measured"] <= 0.10)
    memory = verdicts["resident bytes per user (replay)"]
    assert memory["measured"] > 0 and memory["met"] == (memory["measured"] <= 3_000)
    processes = verdicts["--processes 2 / 1 process"]
    if figures["processes"]["available"]:
        assert processes["met"] == (processes["measured"] >= 1.6)
        assert figures["processes"]["same_counts"]
    else:
        assert processes["met"] is None and "not available" in text
