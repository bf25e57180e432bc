"""The SQLite store: schema versions, corruption, read-only queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flor.errors import QueryError, StoreError
from flor.store import reader
from flor.store.schema import SCHEMA_VERSION, connect, statements
from flor.store.writer import REPLACED_VALUES, StoreWriter


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLOR_HOME", str(home))
    StoreWriter(home / "flor.db").close()
    return home


def test_new_store_is_wal_with_current_schema(home: Path) -> None:
    conn = sqlite3.connect(home / "flor.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "loops", "logs", "checkpoints", "meta"} <= tables


def test_a_store_from_a_newer_flor_is_refused_with_both_versions(home: Path) -> None:
    conn = sqlite3.connect(home / "flor.db")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version 99 .* up to {SCHEMA_VERSION}"):
        connect(home / "flor.db")
    with pytest.raises(StoreError, match="upgrade flor"):
        reader.query("SELECT 1")


def test_a_corrupt_store_file_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "flor.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable flor database"):
        connect(bad)
    with pytest.raises(StoreError, match="not a readable flor database"):
        connect(bad, readonly=True)


def test_an_old_empty_store_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "flor.db"
    sqlite3.connect(path).close()  # schema version 0: an empty database
    conn = connect(path)
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)


def test_a_version_1_store_keeps_every_value_through_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "flor.db"
    old = sqlite3.connect(path)
    for statement in statements(0):
        old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    logs = [
        ("r1", "t1", 1, "loss", "0.5", "float", 1, None),
        ("r1", "t1", 1, "loss", "0.25", "float", 2, None),
        ("r1", "t1", 2, "gn", "3", "int", 1, "replay-a"),
        ("r1", "t1", 3, "gn", "4", "int", 1, "replay-b"),
    ]
    old.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", logs)
    old.execute("INSERT INTO loops VALUES ('r1', 1, NULL, 'epoch', 0, NULL, 1.5)")
    old.commit()
    old.close()

    conn = connect(path)
    migrated = conn.execute(
        "SELECT run_id, tstamp, ctx_id, name, value, type, seq, replay_id, writer FROM logs "
        "ORDER BY name, writer, seq"
    ).fetchall()
    assert migrated == [
        (*row, row[7] or "") for row in sorted(logs, key=lambda r: (r[3], r[7] or "", r[6]))
    ]
    loops = conn.execute("SELECT * FROM loops").fetchall()
    assert loops == [("r1", 1, None, "epoch", 0, None, 1.5)]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM runs",
        "INSERT INTO logs VALUES ('r','t',NULL,'n','1','int',1,NULL)",
        "DROP TABLE logs",
        "ATTACH DATABASE 'x.db' AS x",
        "PRAGMA journal_mode = DELETE",
    ],
)
def test_query_refuses_writing_statements(home: Path, sql: str) -> None:
    with pytest.raises(QueryError, match="only reads"):
        reader.query(sql)
    assert reader.query("SELECT COUNT(*) AS n FROM runs")["n"].item() == 0


def test_query_reports_invalid_sql(home: Path) -> None:
    with pytest.raises(QueryError, match="invalid SQL"):
        reader.query("SELEC * FROM runs")
    with pytest.raises(QueryError):
        reader.query("SELECT 1; SELECT 2")


def test_query_takes_parameters_never_interpolation(home: Path) -> None:
    frame = reader.query("SELECT ? AS v", ("x'); DROP TABLE runs; --",))
    assert frame["v"].item() == "x'); DROP TABLE runs; --"


def test_no_store_yet_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "nothing"))
    with pytest.raises(StoreError, match="record a run first"):
        reader.dataframe(["loss"])


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        # the SQL console's count (issue 16): read in order, no sort of every row
        ("SELECT name, COUNT(*) FROM logs GROUP BY name", (), "COVERING INDEX logs_by_name"),
        ("SELECT DISTINCT name FROM logs", (), "COVERING INDEX logs_by_name"),
        # replay's replacement of earlier hindsight values: one seek per replaced row
        (
            REPLACED_VALUES.format(same="IS"),
            ("loss", "r1", 5, "b"),
            "COVERING INDEX logs_by_name (name=? AND run_id=? AND ctx_id=?)",
        ),
        # the dataframe's read of a run stays on the table's own key, in its order
        (
            "SELECT name, writer, tstamp, type, COUNT(*) FROM logs WHERE run_id = ? "
            "AND name IN (?, ?) GROUP BY name, writer, tstamp, type",
            ("r1", "loss", "acc"),
            "PRIMARY KEY (run_id=? AND name=?)",
        ),
    ],
)
def test_logs_statements_use_the_index_meant_for_them(
    home: Path, sql: str, params: tuple[object, ...], index: str
) -> None:
    conn = sqlite3.connect(home / "flor.db")
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert len(plan) == 1 and plan[0].endswith(index), plan


def test_a_run_with_neither_end_nor_heartbeat_lists_an_unknown_duration(home: Path) -> None:
    conn = sqlite3.connect(home / "flor.db")
    rows = [
        ("ended", 100.0, 130.5, None),
        ("beating", 100.0, None, 112.25),
        ("silent", 100.0, None, None),
    ]
    for run_id, started, ended, heartbeat in rows:
        conn.execute(
            "INSERT INTO runs (run_id, projid, filename, tstamp, status, started, ended, heartbeat)"
            " VALUES (?, 'p', 'train.py', ?, 'failed', ?, ?, ?)",
            (run_id, run_id, started, ended, heartbeat),
        )
    conn.commit()
    conn.close()
    durations = dict(zip(*(reader.runs()[c] for c in ("run_id", "duration_s")), strict=True))
    assert durations["ended"] == 30.5
    assert durations["beating"] == 12.25
    assert durations["silent"] is None or durations["silent"] != durations["silent"]


def test_a_store_whose_runs_never_ended_nor_beat_still_lists_them(home: Path) -> None:
    conn = sqlite3.connect(home / "flor.db")
    conn.execute(
        "INSERT INTO runs (run_id, projid, filename, tstamp, status, started)"
        " VALUES ('silent', 'p', 'train.py', 't', 'running', 100.0)"
    )
    conn.commit()
    conn.close()
    frame = reader.runs()
    assert frame["duration_s"].tolist() == [None]
    assert frame["status"].tolist() == ["killed"]


def test_an_interrupt_just_after_begin_leaves_the_writer_usable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C can land between BEGIN and the transaction's body: the writer must roll back,
    or every later write on its connection fails ("cannot start a transaction within a
    transaction") and the store stays locked for the others."""
    from flor.store import sqlite as sqlite_backend

    writer = StoreWriter(home / "flor.db")
    began = sqlite_backend.begin_immediate

    def begin_then_interrupt(conn: sqlite3.Connection, target: object) -> None:
        began(conn, target)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite_backend, "begin_immediate", begin_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        writer.transaction(lambda c: c.execute("SELECT 1"))
    monkeypatch.setattr(sqlite_backend, "begin_immediate", began)
    writer.transaction(lambda c: c.execute("INSERT INTO meta VALUES ('probe', 'x')"))
    other = StoreWriter(home / "flor.db")
    other.transaction(lambda c: c.execute("DELETE FROM meta WHERE key = 'probe'"))
    other.close()
    writer.close()
