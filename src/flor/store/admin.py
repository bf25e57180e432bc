"""Deleting runs and collecting checkpoint files nothing refers to."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flor.store import reader
from flor.store.location import db_path, home_dir
from flor.store.writer import StoreWriter

CHECKPOINT_DIR = "checkpoints"


def checkpoint_root(home: Path) -> Path:
    return home / CHECKPOINT_DIR


def delete_run(run: str, home: Path | None = None) -> str:
    """Remove a run (and its replays) from the store; its git ref stays for history."""
    home = home or home_dir()
    run_id = str(reader.find_run(run, home)["run_id"])
    writer = StoreWriter(db_path(home))

    def work(conn: sqlite3.Connection) -> None:
        for table in ("logs", "loops", "checkpoints", "commits"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE run_id = ? OR replay_of = ?", (run_id, run_id))

    try:
        writer.transaction(work)
    finally:
        writer.close()
    return run_id


def collect_garbage(home: Path | None = None, *, dry_run: bool = False) -> tuple[int, int]:
    """Delete checkpoint blobs that no checkpoint row refers to; returns (count, bytes)."""
    from flor.runtime.checkpoint import BlobStore

    home = home or home_dir()
    blobs = BlobStore(checkpoint_root(home))
    conn = reader.open_reader(home)
    try:
        referenced = {row[0] for row in conn.execute("SELECT DISTINCT digest FROM checkpoints")}
    finally:
        conn.close()
    removed = freed = 0
    for digest in sorted(blobs.digests() - referenced):
        size = len(blobs.get(digest))
        if not dry_run:
            blobs.delete(digest)
        removed += 1
        freed += size
    return removed, freed
