"""SQLite schema, forward migrations and connections.

Migration `i` upgrades a store from schema version `i` to `i + 1`; a store written by a
newer flor is refused rather than guessed at.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

from flor.errors import StoreError

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the core tables of DESIGN.md
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        projid TEXT NOT NULL,
        filename TEXT NOT NULL,
        tstamp TEXT NOT NULL,
        status TEXT NOT NULL,
        mode TEXT NOT NULL DEFAULT 'record',
        replay_of TEXT,
        snapshot TEXT,
        base_commit TEXT,
        branch TEXT,
        argv TEXT,
        cwd TEXT,
        args TEXT,
        host TEXT,
        pid INTEGER,
        started REAL NOT NULL,
        ended REAL,
        heartbeat REAL,
        error TEXT,
        note TEXT
    );
    CREATE TABLE IF NOT EXISTS loops (
        run_id TEXT NOT NULL,
        ctx_id INTEGER NOT NULL,
        parent_ctx_id INTEGER,
        name TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        value TEXT,
        seconds REAL,
        PRIMARY KEY (run_id, ctx_id)
    );
    CREATE TABLE IF NOT EXISTS logs (
        run_id TEXT NOT NULL,
        tstamp TEXT NOT NULL,
        ctx_id INTEGER,
        name TEXT NOT NULL,
        value TEXT,
        type TEXT NOT NULL,
        seq INTEGER NOT NULL,
        replay_id TEXT
    );
    CREATE INDEX IF NOT EXISTS logs_by_name ON logs (name, run_id);
    CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, ctx_id);
    CREATE TABLE IF NOT EXISTS commits (
        run_id TEXT NOT NULL,
        tstamp TEXT NOT NULL,
        snapshot TEXT,
        PRIMARY KEY (run_id, tstamp)
    );
    CREATE TABLE IF NOT EXISTS checkpoints (
        run_id TEXT NOT NULL,
        ctx_id INTEGER,
        iteration INTEGER NOT NULL,
        object TEXT NOT NULL,
        digest TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        seconds REAL NOT NULL,
        PRIMARY KEY (run_id, iteration, object)
    );
    """,
    # 1 -> 2: logs and loops clustered by run, so a run's values of one name are one range
    # read in order (the dataframe reads them a range at a time); `writer` ('' for the
    # recorded run, else the replay task's id) keeps the clustering key unique.
    """
    CREATE TABLE logs_v2 (
        run_id TEXT NOT NULL,
        tstamp TEXT NOT NULL,
        ctx_id INTEGER,
        name TEXT NOT NULL,
        value TEXT,
        type TEXT NOT NULL,
        seq INTEGER NOT NULL,
        replay_id TEXT,
        writer TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, name, writer, tstamp, type, seq)
    ) WITHOUT ROWID;
    INSERT INTO logs_v2 (run_id, tstamp, ctx_id, name, value, type, seq, replay_id,
        writer)
        SELECT run_id, tstamp, ctx_id, name, value, type, seq, replay_id,
            COALESCE(replay_id, '') FROM logs;
    DROP TABLE logs;
    ALTER TABLE logs_v2 RENAME TO logs;
    CREATE INDEX logs_by_run ON logs (run_id, ctx_id);
    CREATE TABLE loops_v2 (
        run_id TEXT NOT NULL,
        ctx_id INTEGER NOT NULL,
        parent_ctx_id INTEGER,
        name TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        value TEXT,
        seconds REAL,
        PRIMARY KEY (run_id, ctx_id)
    ) WITHOUT ROWID;
    INSERT INTO loops_v2 SELECT run_id, ctx_id, parent_ctx_id, name, iteration, value, seconds
        FROM loops;
    DROP TABLE loops;
    ALTER TABLE loops_v2 RENAME TO loops;
    """,
    # 2 -> 3: artifacts and lineage. `artifacts` holds each content once (by BLAKE3 digest);
    # `events` says which run read (input) or wrote (output) which content at which path,
    # where in its loops and under which tstamp (so which code version). See docs/lineage.md.
    """
    CREATE TABLE artifacts (
        digest TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        files INTEGER NOT NULL,
        blob TEXT
    );
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        tstamp TEXT NOT NULL,
        ctx_id INTEGER,
        role TEXT NOT NULL,
        path TEXT NOT NULL,
        digest TEXT,
        status TEXT NOT NULL,
        producer TEXT,
        recorded REAL NOT NULL,
        note TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX events_by_digest ON events (digest, role);
    CREATE INDEX events_by_path ON events (path);
    CREATE INDEX events_by_producer ON events (producer);
    """,
    # 3 -> 4: a long curve's downsampled summary, written when its run ends (store/browse.py)
    """
    CREATE TABLE curves (
        run_id TEXT NOT NULL, name TEXT NOT NULL, total INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    # 4 -> 5: the run's BLAS/OpenMP thread settings, as JSON (runtime/session.py)
    """
    ALTER TABLE runs ADD COLUMN threads TEXT;
    """,
    # 5 -> 6: `logs` indexed by name rather than by (run, ctx): a GROUP BY name or DISTINCT
    # name over the whole table (the SQL console, `flor query`) reads the index in order
    # instead of sorting every row, and replay's replacement of earlier hindsight values
    # seeks (name, run_id, ctx_id). The same columns as before, so a write costs the same.
    """
    DROP INDEX logs_by_run;
    CREATE INDEX logs_by_name ON logs (name, run_id, ctx_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_MS = 60_000
# Upserts (`INSERT OR REPLACE`) on PostgreSQL need each table's key spelled out.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "meta": ("key",),
    "runs": ("run_id",),
    "loops": ("run_id", "ctx_id"),
    "logs": ("run_id", "name", "writer", "tstamp", "type", "seq"),
    "commits": ("run_id", "tstamp"),
    "checkpoints": ("run_id", "iteration", "object"),
    "artifacts": ("digest",),
    "events": ("run_id", "seq"),
    "curves": ("run_id", "name"),
}
_PG_TYPES = {"TEXT": 'TEXT COLLATE "C"', "INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION"}


def statements(step: int, dialect: str = "sqlite") -> list[str]:
    """The statements of migration `step` in a dialect: PostgreSQL gets 64-bit integers and
    doubles, and byte-order text comparison so it sorts and groups exactly as SQLite does."""
    found = [s.strip() for s in MIGRATIONS[step].split(";") if s.strip()]
    if dialect == "postgresql":
        pattern = re.compile(r"\b(TEXT|INTEGER|REAL)\b")
        found = [pattern.sub(lambda m: _PG_TYPES[m.group(1)], s) for s in found]
        found = [s.replace(") WITHOUT ROWID", ")") for s in found]
    return found


def schema_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def check_version(where: str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {where} has schema version {version} but this flor reads up to "
            f"{SCHEMA_VERSION}: upgrade flor (pip install -U flor)"
        )


def _check_version(path: Path, version: int) -> None:
    check_version(str(path), version)


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to SCHEMA_VERSION; returns the version found before."""
    from flor.store.sqlite import begin_immediate

    begin_immediate(conn, path)
    try:
        found = schema_version(conn)
        _check_version(path, found)
        for step in range(found, SCHEMA_VERSION):
            for statement in statements(step):
                conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
        return found
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade(path: Path, version: int) -> None:
    print(
        f"flor: upgrading the store {path} from schema {version} to {SCHEMA_VERSION}",
        file=sys.stderr,
    )
    try:
        connect(path).close()
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"store {path} has schema {version} and needs an upgrade to {SCHEMA_VERSION} "
            f"({exc}): run flor once with write access to it"
        ) from exc


def _corrupt(path: Path, exc: Exception) -> StoreError:
    return StoreError(
        f"store {path} is not a readable flor database ({exc}): move it aside or set "
        "FLOR_HOME to another folder"
    )


def readonly_uri(path: Path) -> str:
    """A read-only SQLite URI for `path`; percent-escaped, so `#`, `?` and `%` in folder
    names stay part of the path instead of starting a fragment or SQLite's options."""
    return f"{path.absolute().as_uri()}?mode=ro"


def _open_readonly(path: Path) -> tuple[sqlite3.Connection, int]:
    conn = sqlite3.connect(
        readonly_uri(path),
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
    )
    conn.execute("PRAGMA query_only = ON")
    version = schema_version(conn)
    _check_version(path, version)
    return conn, version


NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "lustre", "gpfs",
     "beegfs", "fuse.glusterfs", "glusterfs", "ceph", "fuse.ceph", "fuse.s3fs", "fuse.gcsfuse"}
)  # fmt: skip


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The type of the network filesystem `path` is on (from /proc/mounts, or `mounts` in
    its format), else None: SQLite's WAL mode needs shared memory that these lack."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None  # not Linux: nothing to go by
    target = str(path.absolute())
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store; writers create and migrate it, readers require it to exist."""
    try:
        if readonly:
            if not path.exists():
                raise StoreError(
                    f"no flor store at {path}: record a run first (python your_script.py)"
                )
            conn, version = _open_readonly(path)
            if version < SCHEMA_VERSION:  # written by an older flor: bring it forward once
                conn.close()
                _upgrade(path, version)
                conn, version = _open_readonly(path)
                if version < SCHEMA_VERSION:
                    conn.close()
                    raise StoreError(
                        f"store {path} still has schema {version} after an upgrade to "
                        f"{SCHEMA_VERSION}: run flor once with write access to it"
                    )
            return conn
        path.parent.mkdir(parents=True, exist_ok=True)
        remote = network_filesystem(path.parent)
        if remote is not None:
            raise StoreError(
                f"store {path} is on a network filesystem ({remote}), where SQLite's WAL "
                "mode can corrupt it: use a PostgreSQL store (FLOR_STORE=postgresql://...) "
                "for clusters, or set FLOR_HOME to a local folder"
            )
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn, path)
        return conn
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, exc) from exc
