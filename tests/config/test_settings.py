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


def test_an_unknown_environment_variable_is_an_error_like_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="unknown environment variable JOURNEYFLOW_SESSIONS_GAP: it is no setting; "
                                          "did you mean JOURNEYFLOW_SESSIONS_GAP_S"):
        load_settings(env={"JOURNEYFLOW_SESSIONS_GAP": "60"})
    # The variables that are not settings stay allowed, and they are listed in one place.
    from config.loading import NON_SETTING_VARIABLES

    assert "JOURNEYFLOW_CONFIG" in NON_SETTING_VARIABLES
    assert load_settings(env={"OTHER_TOOL_X": "1"}).sessions.gap_s == 1800


def test_the_old_clusters_halflife_still_works_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[clusters]\nhalflife = 0.01\n")
    with caplog.at_level("WARNING"):
        assert load_settings(path, env={}).clusters.learning_rate == 0.01
        assert load_settings(env={"JOURNEYFLOW_CLUSTERS_HALFLIFE": "0.02"}).clusters.learning_rate == 0.02
    assert sum("clusters.halflife" in r.getMessage() and "deprecated" in r.getMessage() for r in caplog.records) == 2
    path.write_text("[clusters]\nhalflife = 0.01\nlearning_rate = 0.02\n")
    with pytest.raises(ConfigError, match="clusters.halflife .deprecated. and clusters.learning_rate are both set"):
        load_settings(path, env={})


def test_every_default_setting_has_a_comment_above_it() -> None:
    """Each key in default.toml is preceded by a comment line, or belongs to a run of keys
    that one comment describes (no blank line between them)."""
    from config.loading import DEFAULT_CONFIG

    lines = DEFAULT_CONFIG.read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        if "=" not in line or line.startswith(("#", "[")) or not line.strip():
            continue
        j = i - 1
        while j >= 0 and "=" in lines[j] and not lines[j].startswith("#"):
            j -= 1  # a run of keys under one comment
        if j < 0 or not lines[j].startswith("#"):
            uncommented.append(line.split("=")[0].strip())
    assert uncommented == []


def test_settings_print_with_secrets_masked() -> None:
    from config.settings import masked

    s = load_settings(env={"JOURNEYFLOW_PRIVACY_SALT": "pepper-1", "JOURNEYFLOW_REDIS_URL": "rediss://u:pw-2@h:1/0",
                           "JOURNEYFLOW_REDIS_PASSWORD": "", "JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                           "JOURNEYFLOW_KAFKA_SASL_USERNAME": "jf", "JOURNEYFLOW_KAFKA_SASL_PASSWORD": "pw-3"})
    text = f"{s!r} {masked(s)}"
    assert not any(secret in text for secret in ("pepper-1", "pw-2", "pw-3"))
    assert "rediss://u:***@h:1/0" in text and masked(s)["kafka"]["sasl_password"] == "***"


def test_idle_release_is_off_by_default_and_never_shorter_than_the_dedup_window() -> None:
    assert load_settings(env={}).state.idle_release_s == 0
    assert load_settings(env={"JOURNEYFLOW_STATE_IDLE_RELEASE_S": "1209600"}).state.idle_release_s == 1209600
    with pytest.raises(ConfigError, match="state.idle_release_s must be 0 or >= 86400"):
        load_settings(env={"JOURNEYFLOW_STATE_IDLE_RELEASE_S": "3600"})
