"""The store's SQL for artifacts and lineage: `artifacts` (each content once, by digest) and
`events` (which run read or wrote which content at which path, and where in its loops).

Writers are the runtime's artifact recorder and `flor.load`; readers are `flor.lineage`
and `flor checkout`. Lineage is walked a level at a time with indexed `IN` lookups, so a
query touches only the part of the graph it prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from flor.store.backend import Connection

EVENT_COLUMNS = (
    "run_id", "seq", "tstamp", "ctx_id", "role", "path", "digest", "status", "producer",
    "recorded", "note",
)  # fmt: skip
_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
_CHUNK = 500  # parameters per IN list, well under SQLite's limit
_SCAN_AT = 5000  # keys past which reading the whole table is cheaper than IN lists


class Event(NamedTuple):
    """One row of `events`: run `run_id` read (`input`) or wrote (`output`) `digest`.
    (A named tuple: lineage builds tens of thousands of them per query.)"""

    run_id: str
    seq: int
    tstamp: str
    ctx_id: int | None
    role: str
    path: str
    digest: str | None
    status: str
    producer: str | None
    recorded: float
    note: str | None


class Artifact(NamedTuple):
    digest: str
    kind: str
    bytes: int
    files: int
    blob: str | None


# -- writing -------------------------------------------------------------------------------


def record(
    conn: Connection, artifacts: Sequence[tuple[Any, ...]], events: Sequence[tuple[Any, ...]]
) -> None:
    """Insert artifact rows (once per digest) and event rows, in the caller's transaction."""
    if artifacts:
        conn.executemany(
            "INSERT OR IGNORE INTO artifacts (digest, kind, bytes, files) VALUES (?, ?, ?, ?)",
            artifacts,
        )
    if events:
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
        conn.executemany(
            f"INSERT OR REPLACE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
            events,
        )


def keep_blob(conn: Connection, digest: str, blob: str) -> None:
    """Note that the artifact's bytes are in the blob store under `blob` (sha256)."""
    conn.execute("UPDATE artifacts SET blob = ? WHERE digest = ?", (blob, digest))


def mark_replaced(conn: Connection, run_id: str, seqs: Iterable[int]) -> None:
    """Earlier outputs of a path that the same run overwrote before it ended."""
    conn.executemany(
        "UPDATE events SET status = 'replaced' WHERE run_id = ? AND seq = ? AND status = 'ok'",
        [(run_id, seq) for seq in seqs],
    )


def other_writers(conn: Connection, path: str, run_id: str, since: float) -> list[str]:
    """Other runs that recorded writing `path` since `since` (concurrent writers)."""
    rows = conn.execute(
        "SELECT DISTINCT run_id FROM events WHERE path = ? AND role = 'output' AND run_id != ? "
        "AND recorded >= ?",
        (path, run_id, since),
    )
    return sorted(row[0] for row in rows)


def delete_run(conn: Connection, run_id: str) -> None:
    conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))


def run_rows(conn: Connection, run_id: str) -> list[tuple[Any, ...]]:
    """A run's events and the artifact rows they name, for `flor store copy`."""
    return [tuple(row) for row in conn.execute(_SELECT_EVENTS + " WHERE run_id = ?", (run_id,))]


def artifact_rows(conn: Connection, digests: Sequence[str]) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for part in _chunks(sorted(set(digests)))
        for row in conn.execute(
            "SELECT digest, kind, bytes, files, blob FROM artifacts "
            f"WHERE digest IN ({_marks(part)})",
            part,
        )
    ]


def copy_rows(
    conn: Connection, artifacts: Sequence[tuple[Any, ...]], events: Sequence[tuple[Any, ...]]
) -> None:
    """Rows read by `run_rows`/`artifact_rows`, written into another store."""
    if artifacts:
        conn.executemany(
            "INSERT OR IGNORE INTO artifacts (digest, kind, bytes, files, blob) "
            "VALUES (?, ?, ?, ?, ?)",
            artifacts,
        )
    record(conn, (), events)


# -- reading -------------------------------------------------------------------------------


def _chunks(items: Sequence[str]) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(items), _CHUNK):
        yield tuple(items[start : start + _CHUNK])


def _marks(part: Sequence[Any]) -> str:
    return ", ".join("?" for _ in part)


def _events(conn: Connection, where: str, values: Sequence[str]) -> list[Event]:
    found: list[Event] = []
    for part in _chunks(sorted(set(values))):
        rows = conn.execute(f"{_SELECT_EVENTS} WHERE {where} IN ({_marks(part)})", part)
        found += map(Event._make, rows)
    return found


def all_events(conn: Connection) -> list[Event]:
    """Every event that names a content (for walks that cover most of the store)."""
    return list(map(Event._make, conn.execute(_SELECT_EVENTS + " WHERE digest IS NOT NULL")))


def events_of_runs(conn: Connection, run_ids: Sequence[str]) -> list[Event]:
    """Every event recorded by these runs."""
    return _events(conn, "run_id", run_ids)


def events_of_digests(conn: Connection, digests: Sequence[str]) -> list[Event]:
    """Every event that read or wrote one of these contents."""
    return _events(conn, "digest", digests)


def events_produced_by(conn: Connection, run_ids: Sequence[str]) -> list[Event]:
    """Reads of content these runs produced without declaring it (checkpoints via flor.load)."""
    return _events(conn, "producer", run_ids)


def events_at_path(conn: Connection, paths: Sequence[str]) -> list[Event]:
    return _events(conn, "path", paths)


def artifacts(conn: Connection, digests: Sequence[str]) -> dict[str, Artifact]:
    if len(digests) <= _SCAN_AT:
        return {row[0]: Artifact._make(row) for row in artifact_rows(conn, digests)}
    wanted = set(digests)  # most of the table: one scan beats hundreds of IN lists
    rows = conn.execute("SELECT digest, kind, bytes, files, blob FROM artifacts")
    return {row[0]: Artifact._make(row) for row in rows if row[0] in wanted}


def runs(conn: Connection, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The run columns lineage shows, by run id."""
    columns = ("run_id", "filename", "tstamp", "status", "snapshot", "started", "mode")
    found: dict[str, dict[str, Any]] = {}
    for part in _chunks(sorted(set(run_ids))):
        rows = conn.execute(
            f"SELECT {', '.join(columns)} FROM runs WHERE run_id IN ({_marks(part)})", part
        )
        for row in rows:
            found[row[0]] = dict(zip(columns, row, strict=True))
    return found


def run_ids_starting(conn: Connection, prefix: str) -> list[str]:
    """Recorded (not replay) run ids that start with `prefix` (letters and digits only)."""
    if not prefix.isalnum():
        return []
    rows = conn.execute(
        "SELECT run_id FROM runs WHERE run_id LIKE ? AND mode = 'record'", (prefix + "%",)
    )
    return sorted(row[0] for row in rows)


def counts(conn: Connection) -> tuple[int, int]:
    """(distinct paths, runs) searched, for error messages naming what was looked at."""
    paths = conn.execute("SELECT COUNT(DISTINCT path) FROM events").fetchone()[0]
    runs_ = conn.execute("SELECT COUNT(*) FROM runs WHERE mode = 'record'").fetchone()[0]
    return int(paths), int(runs_)
