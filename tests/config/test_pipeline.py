"""The pipeline's sections (config/pipeline.py): their checks, through load_settings."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

import config.pipeline as pipeline
import config.settings as settings_module
from config.settings import Settings, load_settings
from journeyflow.errors import ConfigError


def test_every_pipeline_section_is_a_section_of_settings_and_importable_from_there() -> None:
    hints = typing.get_type_hints(Settings)
    held = {hints[f.name] for f in fields(Settings)}
    for name in pipeline.__all__:
        section = getattr(pipeline, name)
        assert section in held, f"{name} is not a section of Settings"
        # Code and docs import them from config.settings.
        assert getattr(settings_module, name) is section


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOURNEYFLOW_INPUT_MAX_DEAD_LETTER_BYTES": "100"}, "input.max_dead_letter_bytes must be >= 1024; got 100 instead"),
        ({"JOURNEYFLOW_RECOMMENDATIONS_SIZE": "21"}, "recommendations.size must be between 1 and 20; got 21 instead"),
        ({"JOURNEYFLOW_RECOMMENDATIONS_DECAY": "1.0"}, "recommendations.decay must be >= 0 and < 1; got 1.0 instead"),
        ({"JOURNEYFLOW_PROFILES_MAX_PRODUCTS": "0"}, "profiles.max_products must be > 0; got 0 instead"),
        ({"JOURNEYFLOW_MODELS_MIN_EXAMPLES": "-1"}, "models.min_examples must be >= 0; got -1 instead"),
        ({"JOURNEYFLOW_CONVERSIONS_REORDER_S": "-1"}, "conversions.reorder_s must be >= 0; got -1 instead"),
    ],
)
def test_a_pipeline_section_refuses_a_bad_value_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert message in str(caught.value)


def test_the_pipeline_sections_load_from_the_environment() -> None:
    s = load_settings(env={"JOURNEYFLOW_RECOMMENDATIONS_SIZE": "7", "JOURNEYFLOW_CLUSTERS_K": "3"})
    assert isinstance(s.recommendations, pipeline.RecommendationSettings) and s.recommendations.size == 7
    assert isinstance(s.clusters, pipeline.ClusterSettings) and s.clusters.k == 3


def test_the_privacy_section_masks_its_salt() -> None:
    privacy = load_settings(env={"JOURNEYFLOW_PRIVACY_SALT": "pepper"}).privacy
    assert "pepper" not in repr(privacy) and "***" in repr(privacy)
