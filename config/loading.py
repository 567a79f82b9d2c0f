"""Read settings from TOML files and ``JOURNEYFLOW_*`` environment variables, and build
each section with its types and checks (:func:`config.settings.load_settings` drives them).
"""

from __future__ import annotations

import difflib
import logging
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from journeyflow.errors import ConfigError

__all__ = ["ALIASES", "DEFAULT_CONFIG", "ENV_PREFIX", "NON_SETTING_VARIABLES", "build", "from_env", "merge", "read_toml"]

# The logger of config.settings, whose loading this is.
log = logging.getLogger("config.settings")

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
ENV_PREFIX = "JOURNEYFLOW_"

NON_SETTING_VARIABLES: dict[str, str] = {
    "JOURNEYFLOW_CONFIG": "the settings file, like --config",
    "JOURNEYFLOW_PURE": "1 runs the per-user modules from source, not mypyc's build (journeyflow/compiled.py)",
}
"""The only ``JOURNEYFLOW_*`` environment variables that are not settings; any other
that names no setting stops start-up, as an unknown key in a file does. Add here
(with what it is for) any variable the project reads that is not a setting."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as ex:
        msg = f"config file {str(path)!r} is not valid TOML: {ex}"
        raise ConfigError(msg) from ex


def merge(base: dict[str, Any], extra: dict[str, Any], origin: str, sections: Mapping[str, type]) -> None:
    """Merge the sections of ``extra`` (read from ``origin``) into ``base``; refuse unknown sections and keys."""
    for section, values in extra.items():
        if section not in sections:
            msg = f"unknown section [{section}] in {origin}; known: {', '.join(sections)}"
            raise ConfigError(msg)
        if not isinstance(values, dict):
            msg = f"[{section}] in {origin} must be a table; got {values!r} instead"
            raise ConfigError(msg)
        known = {f.name for f in fields(sections[section])}
        values = _apply_aliases(section, values, origin)
        for key in values:
            if key not in known:
                msg = (
                    f"unknown setting {section}.{key} in {origin}; "
                    f"known in [{section}]: {', '.join(sorted(known))}"
                )
                raise ConfigError(msg)
        base.setdefault(section, {}).update(values)


def from_env(env: Mapping[str, str], sections: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """Collect ``JOURNEYFLOW_<SECTION>_<KEY>`` variables, converted to the key's type."""
    found: dict[str, dict[str, Any]] = {}
    names = {}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            names[f"{ENV_PREFIX}{section}_{f.name}".upper()] = (section, f.name, hints[f.name])
    for (section, old), new in ALIASES.items():
        kind = names[f"{ENV_PREFIX}{section}_{new}".upper()][2]
        names[f"{ENV_PREFIX}{section}_{old}".upper()] = (section, old, kind)
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var in NON_SETTING_VARIABLES:
            continue
        if var not in names:
            close = difflib.get_close_matches(var, list(names), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            msg = (
                f"unknown environment variable {var}: it is no setting{hint} "
                f"(settings are JOURNEYFLOW_<SECTION>_<KEY>; other variables: {', '.join(NON_SETTING_VARIABLES)})"
            )
            raise ConfigError(msg)
        section, key, kind = names[var]
        found.setdefault(section, {})[key] = _convert(var, text, kind)
    return found


def _convert(var: str, text: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return lowered in ("1", "true", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == list[str]:
            return [part.strip() for part in text.split(",") if part.strip()]
        return text
    except ValueError:
        msg = f"{var} must be {_type_name(kind)}; got {text!r} instead"
        raise ConfigError(msg) from None


def _type_name(kind: Any) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
    }.get(kind, "a list of strings")


def build(section: str, cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        key = f"{section}.{f.name}"
        if f.name not in values:
            msg = f"missing setting {key}"
            raise ConfigError(msg)
        value = values[f.name]
        kind = hints[f.name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _is_instance(value, kind):
            msg = f"{key} must be {_type_name(kind)}; got {value!r} instead"
            raise ConfigError(msg)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            msg = f"{key} {problem}; got {value!r} instead"
            raise ConfigError(msg)
        kwargs[f.name] = value
    return cls(**kwargs)


def _is_instance(value: Any, kind: Any) -> bool:
    if kind == list[str]:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


ALIASES: dict[tuple[str, str], str] = {
    ("clusters", "halflife"): "learning_rate",
}
"""Old key -> its new name, per section. An old key still works, with a warning."""


def _apply_aliases(section: str, values: dict[str, Any], origin: str) -> dict[str, Any]:
    renamed = dict(values)
    for (where, old), new in ALIASES.items():
        if where != section or old not in renamed:
            continue
        if new in renamed:
            msg = f"{section}.{old} (deprecated) and {section}.{new} are both set in {origin}; keep {section}.{new}"
            raise ConfigError(msg)
        log.warning(
            "setting %s.%s in %s is deprecated; call it %s.%s (same value)", section, old, origin, section, new
        )
        renamed[new] = renamed.pop(old)
    return renamed
