"""The reads the library itself runs, as typed functions returning plain rows.

Every statement flor runs on its own behalf lives in `flor.store` (here for reads, in
`flor.store.writer` for writes); callers never write SQL. Unlike the user-facing
`flor.store.reader.query`, these open one read-only connection per call without the
read-only authorizer, without flushing the recording session and without pandas.
`home=None` means the store the user-facing readers would pick (see `locate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from flor.paths import db_path
from flor.store.backend import Target, open_backend, resolve


class LoopTiming(NamedTuple):
    """One iteration of a top-level loop: its name, index and seconds (None if unfinished)."""

    name: str
    iteration: int
    seconds: float | None


class CheckpointRow(NamedTuple):
    """One object checkpointed at the start of an outer iteration."""

    iteration: int
    object: str
    digest: str
    bytes: int
    seconds: float


class LoggedValue(NamedTuple):
    """A value as stored: its loop context (None outside loops), name, JSON text and type."""

    ctx_id: int | None
    name: str
    value: str | None
    type: str


class RecordedRun(NamedTuple):
    run_id: str
    projid: str
    filename: str
    tstamp: str
    snapshot: str | None


class RunValue(NamedTuple):
    run_id: str
    name: str
    value: str | None
    type: str
    writer: str  # '' for the run's own record, else the replay task that logged it


@dataclass(frozen=True)
class RecordingSession:
    """What the store needs from a run recording in this process: its store folder, and a
    flush so user-facing reads see its latest values. Registered by the runtime
    (`attach_session`), so the store never imports the runtime."""

    home: Path
    flush: Callable[[], None]


_recording: RecordingSession | None = None


def attach_session(home: Path, flush: Callable[[], None]) -> None:
    """Make reads default to `home` and user-facing reads call `flush` first."""
    global _recording
    _recording = RecordingSession(home, flush)


def flush_recording() -> None:
    """Flush this process's recording session, if any, before a user-facing read."""
    if _recording is not None:
        _recording.flush()


def locate(home: Path | None = None) -> Target:
    """The store to read: `FLOR_STORE`, else the SQLite file in `home`, else in the
    recording session's home, else in the project's store folder."""
    if _recording is not None:
        home = home or _recording.home
    return resolve(db_path(home) if home is not None else None)


def _fetch(home: Path | None, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Every row of one read of the store `locate(home)` picks, on its own connection."""
    conn = open_backend(locate(home)).reader()
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values) or "NULL"  # `IN ()` is SQLite's alone


def names_present(
    run_ids: Sequence[str], *, recorded_only: bool = False, home: Path | None = None
) -> dict[str, set[str]]:
    """The names each run has values of (recorded ones only, or replayed ones too)."""
    only = " AND replay_id IS NULL" if recorded_only else ""
    rows = _fetch(
        home,
        f"SELECT DISTINCT run_id, name FROM logs WHERE run_id IN ({_marks(run_ids)}){only}",
        tuple(run_ids),
    )
    present: dict[str, set[str]] = {}
    for run_id, name in rows:
        present.setdefault(run_id, set()).add(name)
    return present


def top_level_iterations(run_id: str, home: Path | None = None) -> list[LoopTiming]:
    """The run's iterations of loops outside any loop, in the order they started."""
    rows = _fetch(
        home,
        "SELECT name, iteration, seconds FROM loops WHERE run_id = ? AND parent_ctx_id IS NULL "
        "ORDER BY ctx_id",
        (run_id,),
    )
    return [LoopTiming(name, int(it), None if s is None else float(s)) for name, it, s in rows]


def checkpoints(run_id: str, home: Path | None = None) -> list[CheckpointRow]:
    """Every checkpointed object of a run."""
    rows = _fetch(
        home,
        "SELECT iteration, object, digest, bytes, seconds FROM checkpoints WHERE run_id = ?",
        (run_id,),
    )
    return [CheckpointRow(int(i), o, d, int(b), float(s)) for i, o, d, b, s in rows]


def recorded_values(
    run_id: str, names: Sequence[str], home: Path | None = None
) -> list[LoggedValue]:
    """The run's own (not replayed) values of `names`, in the order they were logged."""
    rows = _fetch(
        home,
        "SELECT ctx_id, name, value, type FROM logs WHERE run_id = ? AND replay_id IS NULL "
        f"AND name IN ({_marks(names)}) ORDER BY seq",
        (run_id, *names),
    )
    return [LoggedValue(None if c is None else int(c), n, v, t) for c, n, v, t in rows]


def recorded_runs(home: Path | None = None) -> list[RecordedRun]:
    """Every recorded (not replay) run, in the order they started."""
    rows = _fetch(
        home,
        "SELECT run_id, projid, filename, tstamp, snapshot FROM runs WHERE mode = 'record' "
        "ORDER BY started",
    )
    return [RecordedRun(*row) for row in rows]


def values_of_names(names: Sequence[str], home: Path | None = None) -> list[RunValue]:
    """Every run's values of `names`: its own first (writer ''), then each replay's, each
    writer's in the order it logged them."""
    rows = _fetch(
        home,
        f"SELECT run_id, name, value, type, writer FROM logs WHERE name IN ({_marks(names)}) "
        "ORDER BY writer, seq",
        tuple(names),
    )
    return [RunValue(*row) for row in rows]


def values_outside_loops(run_id: str, home: Path | None = None) -> list[LoggedValue]:
    """The values a run logged outside any loop, in order (replayed ones included)."""
    rows = _fetch(
        home,
        "SELECT name, value, type FROM logs WHERE run_id = ? AND ctx_id IS NULL ORDER BY seq",
        (run_id,),
    )
    return [LoggedValue(None, n, v, t) for n, v, t in rows]


def value_counts(run_id: str, home: Path | None = None) -> list[tuple[str, int]]:
    """How many values a run holds of each name, by name."""
    rows = _fetch(
        home,
        "SELECT name, COUNT(*) FROM logs WHERE run_id = ? GROUP BY name ORDER BY name",
        (run_id,),
    )
    return [(name, int(count)) for name, count in rows]


def logged_names(home: Path | None = None) -> list[str]:
    """Every name some run has values of: tells a misspelt name from one the runs lack."""
    return sorted(name for (name,) in _fetch(home, "SELECT DISTINCT name FROM logs"))
