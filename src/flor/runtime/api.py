"""The instrumentation calls, kept thin: each defers to the process's session."""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~20 ms of import time

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager
    from os import PathLike
    from types import TracebackType
    from typing import Any, TypeVar

    from flor.runtime.session import Session

    T = TypeVar("T")
    P = TypeVar("P", str, PathLike[str])

# The context module (sqlite, threads, git) loads on the first call, keeping `import flor`
# cheap; `_active` then short-cuts every later call.
_active: Session | None = None
_IMMUTABLE = frozenset({float, int, str, bool, type(None)})


def _session() -> Session:
    global _active
    from flor.runtime import context

    _active = context.current()
    return _active


def log(name: str, value: T) -> T:
    """Record `value` under `name` at the current loop coordinates; returns `value`."""
    s = _active or _session()
    if type(value) in _IMMUTABLE:
        s.append_log((s.ctx, name, value))
    else:
        # encoded at flush: keep what it holds now, not what it will hold by then
        s.append_log((s.ctx, name, captured(value)))
    return value


def captured(value: Any) -> Any:
    """A copy of a mutable logged value as it is at the `flor.log` call (arrays, tensors,
    containers), so changing it in place afterwards does not change what is stored."""
    detach = getattr(value, "detach", None)
    if callable(detach) and callable(getattr(value, "clone", None)):
        return detach().clone()  # torch: asynchronous on a GPU, no sync on the hot path
    if type(value).__module__ == "numpy" and callable(getattr(value, "copy", None)):
        return value.copy()
    if isinstance(value, (list, dict, set, tuple)):
        import copy

        try:
            return copy.deepcopy(value)
        except Exception:  # noqa: BLE001 - an uncopyable element: keep the reference
            return value
    return value


def arg(name: str, default: T) -> T:
    """`--kwargs name=value` from the command line cast to the default's type, else `default`."""
    from flor.errors import FlorError
    from flor.runtime.context import fail

    s = _active or _session()
    try:
        value: T = s.arg(name, default)
    except FlorError as exc:
        fail(exc)
    return value


def loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """Iterate like `iterable`, naming the loop so logs get coordinates and checkpoints a place."""
    from flor.errors import FlorError

    s = _active or _session()
    try:
        return s.loop(name, iterable)
    except FlorError as exc:
        from flor.runtime.context import fail

        fail(exc)


class iteration:  # a class, not @contextmanager: contextlib would cost `import flor` ~3 ms
    """One iteration of a loop that the program does not drive itself (e.g. a web request)."""

    def __init__(self, name: str, index: int | None = None, value: Any = None) -> None:
        self.name, self.index, self.value = name, index, value
        self._inner: AbstractContextManager[None] | None = None

    def __enter__(self) -> Any:
        self._inner = (_active or _session()).iteration(self.name, self.index, self.value)
        self._inner.__enter__()
        return self.value

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._inner is not None
        self._inner.__exit__(kind, error, traceback)
        if kind is None:
            _settle_outputs()


def commit() -> None:
    """Make everything logged so far visible and start a new tstamp (long-running processes)."""
    _settle_outputs()
    (_active or _session()).commit()


def _settle_outputs() -> None:
    """Outputs declared in a web request or a notebook cell are written by now: hash them
    (only if the process declared any: the artifacts module is loaded then)."""
    import sys

    artifacts = sys.modules.get("flor.runtime.artifacts")
    if artifacts is not None and artifacts._recorder is not None:
        artifacts._recorder.settle()


def input(path: P, *, keep: bool = False) -> P:  # noqa: A001 - flor.input reads naturally
    """Record that the run reads the file or folder at `path` (by content digest); returns
    `path`, so it wraps the reading call: `pd.read_csv(flor.input("data/train.csv"))`.
    `keep=True` also stores the bytes, so `flor checkout` can bring them back."""
    _declare("input", path, keep)
    return path


def output(path: P, *, keep: bool = False) -> P:
    """Record that the run writes `path`; hashed once written and verified at the end of the
    run. Returns `path`: `torch.save(state, flor.output("model.pt"))`."""
    _declare("output", path, keep)
    return path


def _declare(role: str, path: Any, keep: bool) -> None:
    import os

    from flor.runtime.artifacts import recorder
    from flor.runtime.context import fail

    s = _active or _session()
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        from flor.errors import UsageError

        fail(UsageError(f"flor.{role} takes a file or folder path, got {path!r}"))
    found = recorder(s)
    if found is not None:
        found.declare(role, path, keep)
