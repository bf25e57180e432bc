"""`--kwargs name=value` on the script's own command line, cast to the default's type."""

from __future__ import annotations

import json
from typing import Any

from flor.errors import ArgError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_kwargs(argv: list[str]) -> dict[str, str]:
    """The `name=value` words after `--kwargs`, up to the next `--option`."""
    found: dict[str, str] = {}
    if "--kwargs" not in argv:
        return found
    start = argv.index("--kwargs") + 1
    for word in argv[start:]:
        if word.startswith("--"):
            break
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            raise ArgError(
                f"--kwargs expects name=value pairs, got {word!r}: write e.g. --kwargs lr=0.001"
            )
        found[name] = value
    return found


def cast(name: str, text: str, default: Any) -> Any:
    """Interpret `text` as a value of the default's type."""
    kind = type(default)
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if default is None:
            try:
                return json.loads(text)
            except ValueError:
                return text
        if kind in (list, dict, tuple):
            value = json.loads(text)
            if not isinstance(value, (list, dict)):
                raise ValueError(text)
            return kind(value)
        return kind(text)
    except (ValueError, TypeError):
        raise ArgError(
            f"--kwargs {name}={text!r} cannot be read as {kind.__name__}, the type of "
            f"flor.arg({name!r})'s default {default!r}: pass a value of that type"
        ) from None
