"""A store locked by another process never stalls training (issue 13): a loop's end leaves
its rows to the background flusher (stopped here, so the loop's end is the only candidate
writer) instead of writing them on the training thread.

The lock is real (another SQLite connection holding `BEGIN IMMEDIATE`); nothing here
depends on timing.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from flor.runtime.session import Identity, Session
from flor.store.writer import StoreWriter


def _session(tmp_path: Path) -> tuple[Session, Path]:
    db = tmp_path / "flor.db"
    session = Session(StoreWriter(db), Identity("run1", "proj", "t.py"), tmp_path, None, ["t.py"])
    session.begin(None, None, None)
    session._stop.set()  # no background flusher: the loop's end is the only writer here
    session._flusher.join()
    return session, db


def _stored(db: Path) -> tuple[int, int]:
    reader = sqlite3.connect(db)
    try:
        logs = reader.execute("SELECT COUNT(*) FROM logs WHERE name = 'loss'").fetchone()[0]
        loops = reader.execute("SELECT COUNT(*) FROM loops WHERE name = 'step'").fetchone()[0]
        return logs, loops
    finally:
        reader.close()


@pytest.mark.timeout(60)  # before the fix the loop's end waited out 200 x 60 s of retries
def test_a_loop_end_leaves_its_rows_buffered_while_another_process_locks_the_store(
    tmp_path: Path,
) -> None:
    session, db = _session(tmp_path)
    locker = sqlite3.connect(db, isolation_level=None)
    for step in session.loop("step", range(3)):
        if step == 0:
            locker.execute("BEGIN IMMEDIATE")  # held across the loop's closing flush
        session.append_log((session.ctx, "loss", step / 2))
    assert _stored(db) == (0, 0)  # nothing written, nothing lost: still buffered
    assert session.values_logged() == 3
    locker.execute("COMMIT")
    session.close()
    assert _stored(db) == (3, 3)
    reader = sqlite3.connect(db)
    values = [v for (v,) in reader.execute("SELECT value FROM logs WHERE name = 'loss'")]
    status = reader.execute("SELECT status FROM runs").fetchone()[0]
    reader.close()
    assert sorted(values) == ["0.0", "0.5", "1.0"] and status == "finished"


@pytest.mark.timeout(60)
def test_a_loop_end_does_not_wait_for_a_flush_in_progress(tmp_path: Path) -> None:
    session, db = _session(tmp_path)
    in_flush, release = threading.Event(), threading.Event()
    real = session.writer.write_batch

    def slow_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        in_flush.set()
        release.wait()
        return real(*args, **kwargs)

    session.writer.write_batch = slow_write  # type: ignore[method-assign]
    background = threading.Thread(target=session.flush)
    background.start()
    in_flush.wait()  # the other flush now holds the flush lock
    session.writer.write_batch = real  # type: ignore[method-assign]
    for step in session.loop("step", range(2)):
        session.append_log((session.ctx, "loss", step))
    assert _stored(db) == (0, 0)
    release.set()
    background.join()
    session.close()
    assert _stored(db) == (2, 2)
