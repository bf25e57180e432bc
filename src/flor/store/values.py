"""Logged values as (JSON text, type tag) pairs, and back.

Values are encoded when a buffer is flushed, not when logged, so `flor.log` stays O(1).
Anything JSON cannot hold is stored as its `repr` with a `repr:<type>` tag: never a crash.
Text every backend can store is guaranteed: a string with NUL characters or lone
surrogates (which PostgreSQL or SQLite's driver reject) is stored as JSON, which escapes
them and decodes to the same string; a `repr` with them is escaped; a value whose
conversion itself fails (a raising `__repr__`, nesting deeper than the recursion limit) is
stored as a placeholder tagged `unrepresentable:<type>` that names the error.
"""

from __future__ import annotations

import json
import math
from typing import Any

_MAX_ARRAY_ITEMS = 10_000


def _unwrap(value: Any) -> Any:
    """Scalars of numpy and torch become plain Python numbers; small arrays become lists."""
    item = getattr(value, "item", None)
    if item is not None and callable(item):
        size = getattr(value, "size", None)
        numel = getattr(value, "numel", None)
        count = numel() if callable(numel) else size
        try:
            if count == 1 or (count is None and getattr(value, "shape", None) == ()):
                return item()
            tolist = getattr(value, "tolist", None)
            if tolist is not None and isinstance(count, int) and count <= _MAX_ARRAY_ITEMS:
                return tolist()
        except Exception:  # noqa: BLE001 - a foreign object's item() may do anything
            return value
    return value


def encode(value: Any) -> tuple[str | None, str]:
    """(text, type tag) for any value; never raises."""
    try:
        text, tag = _encode(value)
    except Exception:  # noqa: BLE001 - a foreign __repr__, item() or tolist() may do anything
        text, tag = _fallback(value)
    if text is None or _storable(text):
        return text, tag
    if tag == "str":
        return json.dumps(text), "json"  # escaped by JSON, decodes to the same string
    return _escape(text), tag


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape(text: str) -> str:
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _fallback(value: Any) -> tuple[str, str]:
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    try:
        return repr(value), f"repr:{name}"
    except Exception as exc:  # noqa: BLE001 - the placeholder names what went wrong instead
        return f"<{name} object: its repr raised {type(exc).__name__}>", f"unrepresentable:{name}"


def _encode(value: Any) -> tuple[str | None, str]:
    kind = type(value)
    if kind is float:
        return (repr(value) if math.isfinite(value) else json.dumps(value)), "float"
    if kind is int:
        return str(value), "int"
    if kind is str:
        return value, "str"
    if kind is bool:
        return ("true" if value else "false"), "bool"
    if value is None:
        return None, "null"
    unwrapped = _unwrap(value)
    if unwrapped is not value:
        return _encode(unwrapped)
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, allow_nan=True), "json"
        except (TypeError, ValueError):
            pass
    for plain in (int, float, str):
        if isinstance(value, plain) and not isinstance(value, bool):
            return _encode(plain(value))
    return repr(value), f"repr:{kind.__module__}.{kind.__qualname__}"


def decode(text: str | None, kind: str) -> Any:
    if kind == "float":
        return float(text) if text is not None else math.nan
    if kind == "int":
        return int(text) if text is not None else None
    if kind == "bool":
        return text == "true"
    if kind == "null" or text is None:
        return None
    if kind == "json":
        return json.loads(text)
    return text
