"""The store's SQL for artifacts and lineage: `artifacts` (each content once, by digest) and
`events` (which run read or wrote which content at which path, and where in its loops).

Writers are the runtime's artifact recorder and `flor.load`; readers are `flor.lineage`
and `flor checkout`. Lineage is walked a level at a time over (key, to) pairs, with indexed
`IN` lookups while it is small (a query touches only the part of the graph it prints), and
over each step's pairs read once when it covers much of the store (`flor.graph`); the
events it followed are read in full afterwards, only for a graph to print.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from flor.store.backend import Connection, Dialect

T = TypeVar("T")

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
    bytes: int | None
    files: int | None
    blob: str | None


def blob_home(home: Path) -> str:
    """Kept artifact bytes: an `artifacts/` folder inside the checkpoint home, content-
    addressed like checkpoints but apart from them (checkpoint gc does not list it; kept
    blobs are collected by `collect_kept`)."""
    from flor.paths import checkpoint_home

    return checkpoint_home(home).rstrip("/") + "/artifacts"


# -- writing -------------------------------------------------------------------------------


def record(
    conn: Connection,
    dialect: Dialect,
    artifacts: Sequence[tuple[Any, ...]],
    events: Sequence[tuple[Any, ...]],
) -> None:
    """Insert artifact rows (once per digest) and event rows, in the caller's transaction."""
    if artifacts:
        columns = ("digest", "kind", "bytes", "files")
        conn.executemany(dialect.upsert("artifacts", columns, replace=False), artifacts)
    if events:
        conn.executemany(dialect.upsert("events", EVENT_COLUMNS, replace=True), events)


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
    conn: Connection,
    dialect: Dialect,
    artifacts: Sequence[tuple[Any, ...]],
    events: Sequence[tuple[Any, ...]],
) -> None:
    """Rows read by `run_rows`/`artifact_rows`, written into another store."""
    if artifacts:
        columns = ("digest", "kind", "bytes", "files", "blob")
        conn.executemany(dialect.upsert("artifacts", columns, replace=False), artifacts)
    record(conn, dialect, (), events)


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


# A walk first follows (key, to) pairs only: the runs and contents it reaches, two short
# strings per event. Only then, and only for a graph to print, are the events it followed
# read in full, as plain tuples of these columns (no object per row).
EDGE_COLUMNS = EVENT_COLUMNS[
    :9
]  # run_id, seq, tstamp, ctx_id, role, path, digest, status, producer
_SELECT_EDGES = f"SELECT {', '.join(EDGE_COLUMNS)} FROM events"


class Step(NamedTuple):
    """One step of a lineage walk: from `key` to `to` over the events `condition` keeps
    (`key` is indexed: digest, run_id or producer)."""

    key: str
    to: str
    condition: str


_PRODUCED = "role = 'output' AND status IN ('ok', 'replaced') AND digest IS NOT NULL"
STEPS = {
    "readers": Step("digest", "run_id", "role = 'input' AND status = 'ok'"),  # runs that read
    "outputs": Step("run_id", "digest", _PRODUCED),  # contents a run wrote
    "products_read": Step(  # checkpoints a run produced that others loaded
        "producer", "digest", "producer IS NOT NULL AND digest IS NOT NULL"
    ),
    "inputs": Step("run_id", "digest", "role = 'input' AND status = 'ok' AND digest IS NOT NULL"),
    "writers": Step("digest", "run_id", _PRODUCED),  # runs that wrote a content
    "product_reads": Step("digest", "producer", "role = 'input' AND producer IS NOT NULL"),
}


def step_pairs(
    conn: Connection, step: str, keys: Collection[str] | None = None
) -> list[tuple[str, str]]:
    """(key, to) of the events a walk's `step` follows from `keys`, by index; of all the
    step's events with None (one scan, for walks that cover much of the store)."""
    key, to, condition = STEPS[step]
    select = f"SELECT {key}, {to} FROM events WHERE {condition}"
    if keys is None:
        return conn.execute(select).fetchall()  # type: ignore[no-any-return]
    found: list[tuple[str, str]] = []
    for part in _chunks(sorted(keys)):
        found += conn.execute(f"{select} AND {key} IN ({_marks(part)})", part).fetchall()
    return found


def producer_rows(conn: Connection, digest: str) -> list[tuple[Any, ...]]:
    """EDGE_COLUMNS of the events that loaded `digest` from the run that produced it."""
    return conn.execute(  # type: ignore[no-any-return]
        f"{_SELECT_EDGES} WHERE digest = ? AND producer IS NOT NULL", (digest,)
    ).fetchall()


def step_rows(
    conn: Connection, step: str, keys: Collection[str] | None = None
) -> list[tuple[Any, ...]]:
    """EDGE_COLUMNS of the events a walk's `step` follows from `keys`: by index for a few
    keys, else one scan of the step's events kept by key; every key's with None (one scan,
    for walks that cover much of the store)."""
    key, _, condition = STEPS[step]
    if keys is None:
        return conn.execute(f"{_SELECT_EDGES} WHERE {condition}").fetchall()  # type: ignore[no-any-return]
    if len(keys) <= _SCAN_AT:
        found: list[tuple[Any, ...]] = []
        for part in _chunks(sorted(keys)):
            found += conn.execute(
                f"{_SELECT_EDGES} WHERE {key} IN ({_marks(part)}) AND {condition}", part
            ).fetchall()
        return found
    at = EDGE_COLUMNS.index(key)
    wanted = set(keys)
    return [row for row in step_rows(conn, step) if row[at] in wanted]


def event_count(conn: Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def events_of_digests(conn: Connection, digests: Sequence[str]) -> list[Event]:
    """Every event that read or wrote one of these contents."""
    return _events(conn, "digest", digests)


def events_of_run(conn: Connection, run_id: str) -> list[Event]:
    """A run's events in the order it declared them."""
    return sorted(_events(conn, "run_id", [run_id]), key=lambda e: e.seq)


def events_at_path(conn: Connection, paths: Sequence[str]) -> list[Event]:
    return _events(conn, "path", paths)


def artifacts(conn: Connection, digests: Collection[str]) -> dict[str, Artifact]:
    if len(digests) <= _SCAN_AT:
        return _by_first(artifact_rows(conn, list(digests)), Artifact)
    # most of the table: one scan beats hundreds of IN lists
    rows = conn.execute("SELECT digest, kind, bytes, files, blob FROM artifacts").fetchall()
    found = _by_first(rows, Artifact)
    for digest in found.keys() - set(digests):
        del found[digest]
    return found


def _by_first(rows: list[Any], kind: type[T]) -> dict[str, T]:
    """Rows as `kind` (a named tuple, made without `_make`'s checks) by their first column,
    in C loops: lineage over the whole store reads tens of thousands."""
    made = map(tuple.__new__, itertools.repeat(kind), rows)  # type: ignore[arg-type]
    return dict(zip(map(operator.itemgetter(0), rows), made, strict=True))


def runs(conn: Connection, run_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The run columns lineage shows, by run id."""
    columns = ("run_id", "filename", "tstamp", "status", "snapshot", "started", "mode")
    select = f"SELECT {', '.join(columns)} FROM runs"
    if len(run_ids) > _SCAN_AT:  # most of the table: one scan
        rows = conn.execute(select).fetchall()
    else:
        rows = [
            row
            for p in _chunks(sorted(set(run_ids)))
            for row in conn.execute(f"{select} WHERE run_id IN ({_marks(p)})", p)
        ]
    attrs = map(dict, map(zip, itertools.repeat(columns), rows))
    found = dict(zip(map(operator.itemgetter(0), rows), attrs, strict=True))
    for run_id in found.keys() - set(run_ids):
        del found[run_id]
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


# -- flor gc: kept bytes no recorded run names any more --------------------------------------


def live_blobs(conn: Connection) -> list[tuple[str, str]]:
    """(blob, kind) of each kept artifact some event still names (a recorded run read or
    wrote it); the blobs of artifacts whose runs were all deleted are not listed."""
    rows = conn.execute(
        "SELECT DISTINCT a.blob, a.kind FROM artifacts a WHERE a.blob IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM events e WHERE e.digest = a.digest)"
    )
    return [(str(blob), str(kind)) for blob, kind in rows]


def collect_kept(
    home: Path, conn: Connection, cutoff: float, found: Any, *, dry_run: bool, wait: bool
) -> None:
    """`flor gc` for kept artifacts: remove blobs (and a kept folder's file blobs) that no
    recorded run's artifact names, last modified before `cutoff`; adds to `found`'s
    `blobs`, `temp_files` and `bytes`. Holds the kept blobs' own lock, as checkpoints do."""
    import json

    from flor.blobs import BlobStore

    blobs = BlobStore(blob_home(home))
    with blobs.collecting(wait):
        referenced: set[str] = set()
        for blob, kind in live_blobs(conn):
            referenced.add(blob)
            if kind == "dir":  # a folder is kept as a manifest naming each file's blob
                referenced.update(sha for _, sha in json.loads(blobs.get(blob))["files"])
        for key, size in blobs.garbage(referenced, cutoff):
            if not dry_run:
                blobs.remove(key)
            if "/." in key:
                found.temp_files += 1
            else:
                found.blobs += 1
            found.bytes += size
