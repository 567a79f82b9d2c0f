"""How a setting is declared (its check, whether it is secret) and how it is shown (masked).

The sections of :mod:`config.settings` declare every field with :func:`setting`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field, fields
from typing import Any

__all__ = ["MASK", "Check", "mask_url", "masked_repr", "non_negative", "one_of", "positive", "setting", "share", "shown_value"]

Check = Callable[[Any], str | None]



def positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def one_of(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def share(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def setting(check: Check | None = None, *, secret: bool = False) -> Any:
    return field(metadata={"check": check, "secret": secret})



MASK = "***"


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user part masked.

    >>> mask_url("rediss://jf:s3cret@cache:6380/0")
    'rediss://jf:***@cache:6380/0'
    >>> mask_url("redis://cache:6379/0")
    'redis://cache:6379/0'
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{host}"


def shown_value(section: Any, name: str) -> Any:
    value = getattr(section, name)
    meta = next(f.metadata for f in fields(section) if f.name == name)
    if meta.get("secret") and value:
        return MASK
    if name == "url" and isinstance(value, str):
        return mask_url(value)
    return value


def masked_repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={shown_value(self, f.name)!r}" for f in fields(self))
    return f"{type(self).__name__}({shown})"
