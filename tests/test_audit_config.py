"""A newcomer's audit of ``--config``: a file that changes one setting keeps the shipped rules.

A settings file only needs the keys it changes (README, Configuration), and a relative
file setting is read "from the working directory, else from the folder of the config file
that set them" (``config/default.toml``). But every relative file setting was resolved
against the folder of the last config file read, so ``--config my.toml`` holding only
``[sessions] gap_s`` stopped start-up with ``rules file '/my/folder/rules.toml' does not
exist`` unless the working directory happened to hold a ``rules.toml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loading import DEFAULT_CONFIG
from config.settings import load_settings


def test_a_config_file_that_changes_one_setting_keeps_the_shipped_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text("[sessions]\ngap_s = 60\n")
    settings = load_settings(tmp_path / "mine.toml", env={})
    assert settings.sessions.gap_s == 60
    assert settings.rules_path == DEFAULT_CONFIG.parent / "rules.toml"


def test_a_rules_file_the_config_file_names_is_read_from_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "mine.toml").write_text('[segments]\nrules_file = "my_rules.toml"\n')
    (folder / "my_rules.toml").write_text("")
    assert load_settings(folder / "mine.toml", env={}).rules_path == folder / "my_rules.toml"


def test_a_rules_file_in_the_working_directory_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text('[segments]\nrules_file = "my_rules.toml"\n')
    (tmp_path / "my_rules.toml").write_text("")
    assert load_settings(tmp_path / "mine.toml", env={}).rules_path.resolve() == tmp_path / "my_rules.toml"


def test_a_relative_rules_file_from_the_environment_is_read_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "mine.toml").write_text("[sessions]\ngap_s = 60\n")
    (folder / "env_rules.toml").write_text("")
    settings = load_settings(folder / "mine.toml", env={"JOURNEYFLOW_SEGMENTS_RULES_FILE": "env_rules.toml"})
    assert settings.rules_path == folder / "env_rules.toml"
