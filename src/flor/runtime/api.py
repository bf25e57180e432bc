"""The instrumentation calls, kept thin: each defers to the process's session."""

from __future__ import annotations

from contextlib import contextmanager

TYPE_CHECKING = False  # typing itself costs ~20 ms of import time

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, TypeVar

    from flor.runtime.session import Session

    T = TypeVar("T")

# The session module (sqlite, threads, git) loads on the first call, keeping `import flor`
# cheap; `_active` then short-cuts every later call.
_active: Session | None = None
_IMMUTABLE = frozenset({float, int, str, bool, type(None)})


def _session() -> Session:
    global _active
    from flor.runtime import session

    _active = session.current()
    return _active


def log(name: str, value: T) -> T:
    """Record `value` under `name` at the current loop coordinates; returns `value`."""
    s = _active or _session()
    if type(value) in _IMMUTABLE:
        s.logs.append((s.ctx, name, value))
    else:
        # encoded at flush: keep what it holds now, not what it will hold by then
        from flor.runtime.session import captured

        s.logs.append((s.ctx, name, captured(value)))
    return value


def arg(name: str, default: T) -> T:
    """`--kwargs name=value` from the command line cast to the default's type, else `default`."""
    from flor.errors import FlorError
    from flor.runtime.session import fail

    s = _active or _session()
    try:
        value: T = s.arg(name, default)
    except FlorError as exc:
        fail(exc)
    return value


def loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """Iterate like `iterable`, naming the loop so logs get coordinates and checkpoints a place."""
    return (_active or _session()).loop(name, iterable)


@contextmanager
def iteration(name: str, index: int | None = None, value: Any = None) -> Iterator[Any]:
    """One iteration of a loop that the program does not drive itself (e.g. a web request)."""
    with (_active or _session()).iteration(name, index, value):
        yield value


def commit() -> None:
    """Make everything logged so far visible and start a new tstamp (long-running processes)."""
    (_active or _session()).commit()
