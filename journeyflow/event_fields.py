"""Read and check one field of an event document, with the precise reason when it is wrong.

Helpers of :class:`~journeyflow.event_parser.EventParser`: each raises :class:`Invalid`
(a dead letter's code and reason) instead of returning a bad value.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from journeyflow.events import MAX_ID_CHARS, Item, json_type

__all__ = [
    "Invalid",
    "amount_field",
    "consent_field",
    "identifier_field",
    "items_field",
    "json_error",
    "object_field",
    "quantity_field",
    "text_field",
    "wrong_type",
]

# What a purchase's fields read from journeyflow.events (not compiled), held as statics: compiled,
# a name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_MAX_ID_CHARS: Final = MAX_ID_CHARS
_ITEM: Final = Item


class Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def wrong_type(name: str, expected: str, value: Any) -> Invalid:
    return Invalid(
        "wrong_type", f"{name} must be {expected}; got {json_type(value)} instead"
    )


def text_field(doc: dict[str, Any], name: str, max_chars: int, path: str = "") -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    label = path + name
    if not isinstance(value, str):
        raise wrong_type(label, "a string", value)
    if not 0 < len(value) <= max_chars:
        msg = f"{label} must be 1..{max_chars} characters; got {len(value)}"
        raise Invalid("invalid_value", msg)
    return value


def identifier_field(doc: dict[str, Any], name: str, path: str = "") -> str | None:
    """Read an id that producers send as a string or an integer (product ids)."""
    value = doc.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise wrong_type(path + name, "a string or an integer", value)
    return text_field(doc, name, _MAX_ID_CHARS, path)


def amount_field(doc: dict[str, Any], name: str, path: str = "") -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong_type(path + name, "a number", value)
    if value < 0:
        raise Invalid("invalid_value", f"{path}{name} must be >= 0; got {value}")
    return float(value)


def quantity_field(doc: dict[str, Any], path: str = "") -> int:
    value = doc.get("quantity")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(path + "quantity", "an integer", value)
    if value < 1:
        raise Invalid("invalid_value", f"{path}quantity must be >= 1; got {value}")
    return value


def object_field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise wrong_type(name, "an object", value)
    return value


def items_field(value: Any) -> tuple[Item, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise wrong_type("properties.items", "an array", value)
    items = []
    for n, entry in enumerate(value):
        path = f"properties.items[{n}]."
        if not isinstance(entry, dict):
            raise wrong_type(path[:-1], "an object", entry)
        if entry.get("product_id") is None:
            raise Invalid("missing_field", f"missing field: {path}product_id")
        items.append(
            _ITEM(
                product_id=identifier_field(entry, "product_id", path),  # type: ignore[arg-type]
                category=text_field(entry, "category", _MAX_ID_CHARS, path),
                price=amount_field(entry, "price", path) or 0.0,
                quantity=quantity_field(entry, path),
            )
        )
    return tuple(items)


def consent_field(value: Any) -> tuple[bool | None, bool | None]:
    """Return the (personalization, marketing) flags; either may be absent."""
    if not isinstance(value, dict):
        raise wrong_type("context.consent", "an object", value)
    flags = []
    for name in ("personalization", "marketing"):
        flag = value.get(name)
        if flag is not None and not isinstance(flag, bool):
            raise wrong_type(f"context.consent.{name}", "a boolean", flag)
        flags.append(flag)
    if flags == [None, None]:
        msg = "context.consent must hold personalization or marketing; got neither"
        raise Invalid("missing_field", msg)
    return flags[0], flags[1]


def json_error(raw: bytes, ex: orjson.JSONDecodeError) -> tuple[str, str]:
    if not raw.strip():
        return "empty", "empty message"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return "invalid_utf8", f"invalid UTF-8 at byte {bad.start}"
    # orjson reports the position in characters, as in "... (char 57)".
    return "invalid_json", f"invalid JSON at char {ex.pos}: {ex.msg}"
