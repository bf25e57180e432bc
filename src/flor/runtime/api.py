"""The instrumentation calls, kept thin: each defers to the process's session."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flor.errors import FlorError
from flor.runtime import session as _sessions

T = TypeVar("T")


def log(name: str, value: T) -> T:
    """Record `value` under `name` at the current loop coordinates; returns `value`."""
    s = _sessions._session or _sessions.current()
    s.logs.append((s.ctx, name, value))
    return value


def arg(name: str, default: T) -> T:
    """`--kwargs name=value` from the command line cast to the default's type, else `default`."""
    s = _sessions.current()
    try:
        value: T = s.arg(name, default)
    except FlorError as exc:
        _sessions.fail(exc)
    return value


def loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """Iterate like `iterable`, naming the loop so logs get coordinates and checkpoints a place."""
    return _sessions.current().loop(name, iterable)


@contextmanager
def iteration(name: str, index: int | None = None, value: Any = None) -> Iterator[Any]:
    """One iteration of a loop that the program does not drive itself (e.g. a web request)."""
    with _sessions.current().iteration(name, index, value):
        yield value


def commit() -> None:
    """Make everything logged so far visible and start a new tstamp (long-running processes)."""
    _sessions.current().commit()
