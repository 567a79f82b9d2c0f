"""The generator's volume, determinism (same seed, same bytes; users independent of each
other) and output files (gzip, the truth file)."""

from __future__ import annotations

import gzip
from pathlib import Path

from journeyflow.generator import GeneratorConfig, generate
from tests.generator.generated import Dataset


def test_default_volume_is_about_50k_events(default: Dataset) -> None:
    assert 40_000 <= default.stats.events <= 60_000
    assert default.stats.users == 1000
    assert len(default.truth) == 1000
    assert default.stats.sessions == sum(len(row["sessions"]) for row in default.truth.values())
    assert default.stats.lines == len(default.lines)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    generate(config, tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    generate(config, tmp_path / "b.jsonl", tmp_path / "b.truth.jsonl")
    generate(GeneratorConfig(users=60, days=10, seed=8), tmp_path / "c.jsonl", tmp_path / "c.truth.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.truth.jsonl").read_bytes() == (tmp_path / "b.truth.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_skipping_the_truth_leaves_the_events_unchanged(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    with_truth = generate(config, tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    without = generate(config, tmp_path / "b.jsonl")
    assert with_truth == without
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert not (tmp_path / "b.truth.jsonl").exists()


def test_a_user_behaves_the_same_whatever_the_number_of_users(tmp_path: Path) -> None:
    generate(GeneratorConfig(users=20, days=10), tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    generate(GeneratorConfig(users=40, days=10), tmp_path / "b.jsonl", tmp_path / "b.truth.jsonl")
    small = (tmp_path / "a.truth.jsonl").read_bytes().splitlines()
    large = (tmp_path / "b.truth.jsonl").read_bytes().splitlines()
    assert large[:20] == small


def test_gzip_output_holds_the_same_lines(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    generate(config, tmp_path / "plain.jsonl")
    generate(config, tmp_path / "packed.jsonl.gz")
    generate(config, tmp_path / "again.jsonl.gz")
    packed = (tmp_path / "packed.jsonl.gz").read_bytes()
    assert gzip.decompress(packed) == (tmp_path / "plain.jsonl").read_bytes()
    # No name or time in the gzip header: the compressed bytes are reproducible too.
    assert packed == (tmp_path / "again.jsonl.gz").read_bytes()
