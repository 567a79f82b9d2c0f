"""The generator tests' data sets, generated once for the package: the default one and a noisy one."""

from __future__ import annotations

import pytest

from journeyflow.generator import GeneratorConfig
from tests.generator.generated import Dataset, load_dataset


@pytest.fixture(scope="package")
def default(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The default data set: 1000 users, 30 days."""
    folder = tmp_path_factory.mktemp("default")
    return load_dataset(GeneratorConfig(), folder / "events.jsonl", folder / "events.truth.jsonl")


@pytest.fixture(scope="package")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A smaller data set with a lot of every kind of noise, opt-outs and erasures."""
    folder = tmp_path_factory.mktemp("noisy")
    config = GeneratorConfig(
        users=300,
        days=20,
        seed=11,
        duplicate_share=0.05,
        malformed_share=0.03,
        out_of_order_share=0.05,
        late_share=0.02,
        anonymous_share=0.3,
        opt_out_share=0.2,
        forget_share=0.1,
    )
    return load_dataset(config, folder / "events.jsonl", folder / "events.truth.jsonl")
