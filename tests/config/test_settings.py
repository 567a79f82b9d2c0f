"""Settings: defaults, file and environment overrides, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import load_settings
from journeyflow.errors import ConfigError


def test_defaults_hold_the_issue_defaults() -> None:
    s = load_settings(env={})
    assert (s.dedup.window_s, s.sessions.gap_s, s.lateness.allowed_s) == (86400, 1800, 600)
    assert s.profiles.engagement_half_life_s == 7 * 86400
    assert s.kafka.events_topic == "events" and s.kafka.triggers_topic == "triggers"
    assert s.kafka.segment_changes_topic == "segment-changes" and s.kafka.dead_letters_topic == "events-dlq"
    assert s.rules_path.name == "rules.toml" and s.rules_path.exists()


def test_a_file_overrides_only_what_it_names_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text("[sessions]\ngap_s = 900\n[kafka]\nbrokers = 'a:1'\n")
    s = load_settings(path, env={"JOURNEYFLOW_KAFKA_BROKERS": "b:2,c:3", "JOURNEYFLOW_REDIS_URL": "redis://r:6379/0"})
    assert s.sessions.gap_s == 900 and s.dedup.window_s == 86400
    assert s.kafka.brokers == "b:2,c:3" and s.redis.url == "redis://r:6379/0"
    assert load_settings(env={"JOURNEYFLOW_CONFIG": str(path)}).sessions.gap_s == 900


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOURNEYFLOW_SESSIONS_GAP_S": "soon"}, "JOURNEYFLOW_SESSIONS_GAP_S must be an integer; got 'soon' instead"),
        ({"JOURNEYFLOW_SESSIONS_GAP_S": "-5"}, "sessions.gap_s must be > 0; got -5 instead"),
        ({"JOURNEYFLOW_KAFKA_START_FROM": "middle"}, "kafka.start_from must be one of earliest, latest; got 'middle'"),
        ({"JOURNEYFLOW_DEDUP_WINDOW_S": "60"}, "dedup.window_s must be >= lateness.allowed_s"),
        ({"JOURNEYFLOW_RUN_METRICS_PORT": "70000"}, "run.metrics_port must be a port number; got 70000"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env=env)


def test_unknown_keys_and_sections_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[sessions]\ngap = 900\n")
    with pytest.raises(ConfigError, match=r"unknown setting sessions.gap in .*; known in \[sessions\]: gap_s"):
        load_settings(path, env={})
    path.write_text("[sesions]\ngap_s = 900\n")
    with pytest.raises(ConfigError, match=r"unknown section \[sesions\]"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_a_broken_file_says_it_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[sessions\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(path, env={})
