"""The SQL of the digest stat cache (`flor.runtime.digest.StatCache`): a small SQLite file
beside the store, (path, size, mtime, ctime, inode) -> content digest, so an unchanged file
is never hashed twice. Each function raises `sqlite3.Error`; the cache treats that as a
miss (a cache it cannot use only costs time)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

# (path, size, mtime_ns, ctime_ns, inode, digest)
Row = tuple[str, int, int, int, int, str]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, "
        "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, digest TEXT)"
    )
    return conn


def lookup(
    conn: sqlite3.Connection, path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int
) -> str | None:
    """The digest recorded for `path` with exactly this fingerprint, else None."""
    row = conn.execute(
        "SELECT digest FROM digests WHERE path = ? AND size = ? AND mtime_ns = ? "
        "AND ctime_ns = ? AND inode = ?",
        (path, size, mtime_ns, ctime_ns, inode),
    ).fetchone()
    return str(row[0]) if row else None


def save(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """Record digests in one transaction (a path's newer fingerprint replaces its older)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
