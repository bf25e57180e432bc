"""Deleting runs, collecting blobs nothing refers to, and `flor store migrate/info/copy`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flor.errors import FlorError, UsageError
from flor.paths import checkpoint_home, db_path, home_dir
from flor.store import artifacts, reader
from flor.store.backend import (
    Connection,
    ReadConnection,
    Target,
    open_backend,
    parse,
    resolve,
)
from flor.store.status import effective_status
from flor.store.writer import (
    CHECKPOINT_COLUMNS,
    COMMIT_COLUMNS,
    LOG_COLUMNS,
    LOOP_COLUMNS,
    StoreWriter,
)

CURVE_COLUMNS = ("run_id", "name", "total", "body")

TABLES = ("runs", "loops", "logs", "checkpoints", "commits", "artifacts", "events", "curves")
# Tables holding rows of one run, keyed by its run_id (artifacts and events aside).
_RUN_TABLES = ("logs", "loops", "checkpoints", "commits", "curves")


def delete_run(run: str, home: Path | None = None) -> str:
    """Remove a run (and its replays) from the store; its git ref stays for history.

    A run still recording is refused: its process would go on writing rows of a run that
    no longer exists."""
    home = home or home_dir()
    record = reader.find_run(run, home)
    run_id = str(record["run_id"])
    if record["status"] == "running":
        raise FlorError(
            f"run {run_id} is still recording (pid {record['pid']} on {record['host']}): "
            "stop it or let it finish, then delete it"
        )
    writer = StoreWriter(db_path(home))

    def work(conn: Connection) -> None:
        for table in _RUN_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        artifacts.delete_run(conn, run_id)
        conn.execute("DELETE FROM runs WHERE run_id = ? OR replay_of = ?", (run_id, run_id))

    try:
        writer.transaction(work)
    finally:
        writer.close()
    return run_id


GC_GRACE_S = 3600.0


@dataclass
class Garbage:
    """What gc removed: `blobs` are checkpoint blobs, `kept_blobs` the copies of artifacts
    kept with `keep=True`; `temp_files` and `bytes` count both."""

    blobs: int
    temp_files: int
    bytes: int
    kept_blobs: int


def collect_garbage(
    home: Path | None = None,
    *,
    dry_run: bool = False,
    grace: float = GC_GRACE_S,
    now: float | None = None,
    wait: bool = True,
) -> Garbage:
    """Delete checkpoint blobs no checkpoint row refers to, kept artifact copies no recorded
    run names, and temporary files left by interrupted writes, when last modified more than
    `grace` seconds before `now`.

    Runs still recording are safe: gc holds the blob folder's lock, which writers share
    between writing a checkpoint's blobs and its rows; a blob a writer re-uses is touched,
    so the grace period spares it where no lock reaches (object stores, other machines).
    `wait=False` raises instead of waiting for writers to finish a checkpoint.
    """
    import time

    from flor.blobs import BlobStore, Swept

    if grace < 0:
        raise UsageError(f"grace period {grace} s is negative: use 0 or more seconds")
    home = home or home_dir()
    blobs = BlobStore(checkpoint_home(home))
    cutoff = (time.time() if now is None else now) - grace
    kept = Swept()
    with blobs.collecting(wait):
        conn = open_backend(_current(home)).reader()
        try:
            referenced = {row[0] for row in conn.execute("SELECT DISTINCT digest FROM checkpoints")}
            artifacts.collect_kept(home, conn, cutoff, kept, dry_run=dry_run, wait=wait)
        finally:
            conn.close()
        swept = blobs.sweep(referenced, cutoff, dry_run=dry_run)
    return Garbage(
        swept.blobs, swept.temp_files + kept.temp_files, swept.bytes + kept.bytes, kept.blobs
    )


# -- flor store migrate | info | copy ----------------------------------------------------------


def _current(home: Path | None) -> Target:
    return resolve(db_path(home) if home is not None else None)


def migrate(url: str | None = None, home: Path | None = None) -> tuple[Target, int, int]:
    """Create or upgrade the schema of a store (the current one, or `url`)."""
    target = parse(url) if url else _current(home)
    before, after = open_backend(target).migrate()
    return target, before, after


@dataclass
class Info:
    backend: str
    location: str
    schema_version: int
    counts: dict[str, int]


def info(url: str | None = None, home: Path | None = None) -> Info:
    """Backend, masked location, schema version and row counts of a store."""
    target = parse(url) if url else _current(home)
    conn = open_backend(target).reader()
    try:
        version = int(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )
        counts = {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
    finally:
        conn.close()
    return Info(target.kind, str(target), version, counts)


@dataclass
class CopyReport:
    source: str
    destination: str
    copied: int
    skipped: int
    running: int
    values: int


def _rows(conn: ReadConnection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def copy(to_url: str, home: Path | None = None, from_url: str | None = None) -> CopyReport:
    """Copy every finished run of a store into another, idempotently.

    A run already in the destination is left alone, so copying twice copies nothing new;
    runs still recording are left out (copy again once they end). Each run moves in one
    transaction: an interrupted copy leaves whole runs or none.
    """
    source = parse(from_url) if from_url else _current(home)
    destination = parse(to_url)
    if str(source) == str(destination) and source.url == destination.url:
        raise UsageError(f"store {destination} is the store being copied: pick another --to")
    src = open_backend(source).reader()
    writer = StoreWriter(target=destination)
    try:
        present = {
            row[0]
            for row in writer.transaction(lambda c: c.execute("SELECT run_id FROM runs").fetchall())
        }
        run_rows = src.execute("SELECT * FROM runs ORDER BY started").fetchall()
        columns = [d[0] for d in src.execute("SELECT * FROM runs LIMIT 0").description]
        report = CopyReport(str(source), str(destination), 0, 0, 0, 0)
        for raw in run_rows:
            run = dict(zip(columns, raw, strict=True))
            run_id = run["run_id"]
            if run_id in present:
                report.skipped += 1
                continue
            if run["status"] == "running" and effective_status(run) == "running":
                report.running += 1
                continue
            report.values += _copy_run(src, writer, run, columns)
            report.copied += 1
    finally:
        src.close()
        writer.close()
    return report


def _copy_run(
    src: ReadConnection, writer: StoreWriter, run: dict[str, Any], columns: list[str]
) -> int:
    run_id = run["run_id"]
    owner = run["replay_of"] if run["mode"] == "replay" and run["replay_of"] else run_id
    selected = ", ".join(LOG_COLUMNS)
    if run["mode"] == "replay":
        logs = _rows(src, f"SELECT {selected} FROM logs WHERE replay_id = ?", (run_id,))
    else:
        logs = _rows(
            src, f"SELECT {selected} FROM logs WHERE run_id = ? AND replay_id IS NULL", (run_id,)
        )
    # a replay's values sit in the replayed run's loops (copied with that run: ignored)
    tables = {
        "loops": (LOOP_COLUMNS, owner),
        "checkpoints": (CHECKPOINT_COLUMNS, run_id),
        "commits": (COMMIT_COLUMNS, run_id),
        "curves": (CURVE_COLUMNS, run_id),
    }
    rows = {
        table: _rows(src, f"SELECT {', '.join(names)} FROM {table} WHERE run_id = ?", (key,))
        for table, (names, key) in tables.items()
    }
    events = artifacts.run_rows(src, run_id)
    contents = artifacts.artifact_rows(src, [row[6] for row in events if row[6]])
    marks = ", ".join("?" for _ in columns)
    upsert = writer.dialect.upsert

    def work(conn: Connection) -> None:
        conn.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({marks})",
            tuple(run[c] for c in columns),
        )
        for table, (names, _) in tables.items():
            if rows[table]:
                conn.executemany(upsert(table, names, replace=False), rows[table])
        if logs:
            writer._db.insert_rows(conn, "logs", LOG_COLUMNS, logs)
        artifacts.copy_rows(conn, writer.dialect, contents, events)

    writer.transaction(work)
    return len(logs)
