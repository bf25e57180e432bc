"""A flush's rows go to SQLite many per INSERT statement: a batch larger than one
statement takes (SQLite's real parameter limit, lowered here) is written whole, in order,
and a loop context already stored is kept rather than refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flor.store.writer import StoreWriter


def _writer(db: Path, variables: int) -> StoreWriter:
    writer = StoreWriter(db)
    conn = writer._db.conn  # type: ignore[attr-defined]
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
    writer.insert_run(
        {"run_id": "r1", "projid": "p", "filename": "f.py", "tstamp": "t", "status": "running",
         "mode": "record", "started": 1.0, "heartbeat": 1.0}
    )  # fmt: skip
    return writer


def test_a_batch_larger_than_one_statement_is_written_whole(tmp_path: Path) -> None:
    db = tmp_path / "flor.db"
    writer = _writer(db, 20)  # 2 logs rows (9 columns) or 2 loops rows (7) per statement
    loops = [("r1", i + 1, None, "step", i, None, i / 10) for i in range(7)]
    logs = [("r1", "t", i + 1, "loss", repr(i / 2), "float", i + 1, None, "") for i in range(7)]
    writer.write_batch("r1", loops, logs, [], 2.0)
    again = [("r1", 7, None, "step", 6, None, 9.9), ("r1", 8, None, "step", 7, None, 0.7)]
    writer.write_batch("r1", again, [], [], 3.0)  # ctx 7 is stored: kept as it was
    with pytest.raises(sqlite3.IntegrityError):  # a logs row stored twice is an error
        writer.write_batch("r1", [], logs[:3], [], 4.0)
    writer.close()
    reader = sqlite3.connect(db)
    stored_loops = reader.execute(
        "SELECT run_id, ctx_id, parent_ctx_id, name, iteration, value, seconds FROM loops "
        "ORDER BY ctx_id"
    ).fetchall()
    stored_logs = reader.execute(
        "SELECT run_id, tstamp, ctx_id, name, value, type, seq, replay_id, writer FROM logs "
        "ORDER BY seq"
    ).fetchall()
    heartbeat = reader.execute("SELECT heartbeat FROM runs").fetchone()[0]
    reader.close()
    assert stored_loops == [*loops, again[1]]
    assert stored_logs == logs
    assert heartbeat == 3.0  # the refused batch wrote nothing, its heartbeat included
