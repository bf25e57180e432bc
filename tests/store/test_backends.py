"""The store's semantics on both backends: SQLite and PostgreSQL give the same answers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from gitutil import git
from store import pgfixtures

import flor
from flor.errors import QueryError, StoreError, UsageError
from flor.replay import execute, plan
from flor.store import admin, reader
from flor.store.backend import mask, open_backend, parse
from flor.store.browse import SUMMARY_AT
from flor.store.schema import SCHEMA_VERSION
from flor.store.writer import StoreWriter

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

TRAIN = """\
import flor

lr = flor.arg("lr", 0.01)
name = flor.arg("name", "base")
for epoch in flor.loop("epoch", range(3)):
    for step in flor.loop("step", range(4)):
        flor.log("loss", 1.0 / (epoch * 4 + step + 1) + lr)
    for doc in flor.loop("doc", ["a.txt", "b.txt"]):
        flor.log("words", len(doc) * (epoch + 1))
    flor.log("acc", epoch * 0.25)
    flor.log("meta", {"epoch": epoch, "ok": True})
    flor.log("obj", object)
flor.log("final", 7)
flor.log("flag", False)
flor.log("nothing", None)
"""


def _record(script, *args: str) -> None:  # type: ignore[no-untyped-def]
    train = script("train.py", TRAIN)
    train.run(*args)


def _set_version(version: int) -> None:
    writer = StoreWriter()
    writer.transaction(
        lambda c: c.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
        )
    )
    writer.close()


def test_migrate_creates_then_reports_up_to_date(backend: str) -> None:
    target, before, after = admin.migrate()
    assert target.kind == backend and (before, after) == (0, SCHEMA_VERSION)
    assert admin.migrate()[1:] == (SCHEMA_VERSION, SCHEMA_VERSION)
    found = admin.info()
    assert found.backend == backend and found.schema_version == SCHEMA_VERSION
    assert found.counts == {t: 0 for t in admin.TABLES}


def test_a_newer_schema_is_refused_with_both_versions(backend: str) -> None:
    admin.migrate()
    _set_version(SCHEMA_VERSION + 98)
    newer = f"schema version {SCHEMA_VERSION + 98} .* up to {SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=newer):
        StoreWriter()
    with pytest.raises(StoreError, match=newer):
        reader.query("SELECT 1 AS one")
    with pytest.raises(StoreError, match="upgrade flor"):
        admin.migrate()


def test_recorded_values_come_back_typed(backend: str, script) -> None:  # type: ignore[no-untyped-def]
    _record(script, "--kwargs", "lr=0.5", "name=x")
    df = flor.dataframe("lr", "loss", "acc", "words", "meta", "obj")
    assert list(df.columns[:7]) == ["projid", "runid", "tstamp", "filename", "epoch", "step", "doc"]
    assert "doc_value" in df.columns
    assert df["loss"].dropna().tolist()[:2] == [1.5, 1.0]
    assert df["words"].dropna().tolist()[:2] == [5, 5]
    assert df["meta"].iloc[0] == {"epoch": 0, "ok": True}
    assert df["obj"].iloc[0] == "<class 'object'>"
    assert set(df["lr"]) == {0.5}
    top = flor.dataframe()
    assert top[["lr", "name", "final", "flag"]].iloc[0].tolist() == [0.5, "x", 7, False]
    assert top["nothing"].isna().all()
    assert flor.query("SELECT COUNT(*) AS n FROM logs")["n"].item() == 3 * (4 + 2 + 3) + 5


def test_both_backends_give_the_same_dataframe(script, pg_url, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    frames = {}
    for kind, url in (("sqlite", None), ("postgresql", pg_url)):
        monkeypatch.setenv("FLOR_HOME", str(tmp_path / kind))
        if url:
            monkeypatch.setenv("FLOR_STORE", url)
        _record(script, "--kwargs", "lr=0.1")
        _record(script, "--kwargs", "lr=0.2", "name=two")
        frames[kind] = (
            flor.dataframe("lr", "name", "loss", "acc", "words", "meta", "final"),
            flor.dataframe(),
            flor.query(
                "SELECT name, COUNT(*) AS n, SUM(seq) AS s, MIN(value) AS v FROM logs "
                "GROUP BY name ORDER BY name"
            ),
        )
    for sqlite_frame, pg_frame in zip(frames["sqlite"], frames["postgresql"], strict=True):
        ignored = [c for c in ("runid", "tstamp") if c in sqlite_frame.columns]
        pd.testing.assert_frame_equal(
            sqlite_frame.drop(columns=ignored), pg_frame.drop(columns=ignored)
        )


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM runs",
        "INSERT INTO logs VALUES ('r','t',NULL,'n','1','int',1,NULL)",
        "UPDATE runs SET status = 'x'",
        "DROP TABLE logs",
        "CREATE TABLE t (x INTEGER)",
    ],
)
def test_query_only_reads(backend: str, script, sql: str) -> None:  # type: ignore[no-untyped-def]
    _record(script)
    with pytest.raises(QueryError, match="only reads"):
        reader.query(sql)
    assert reader.query("SELECT COUNT(*) AS n FROM runs")["n"].item() == 1
    assert reader.query("SELECT COUNT(*) AS n FROM logs")["n"].item() > 0


def test_query_errors_and_parameters(backend: str) -> None:
    admin.migrate()
    with pytest.raises(QueryError, match="invalid SQL"):
        reader.query("SELEC * FROM runs")
    with pytest.raises(QueryError):
        reader.query("SELECT 1; DELETE FROM runs")
    evil = "x'); DROP TABLE runs; --"
    assert reader.query("SELECT ? AS v", (evil,))["v"].item() == evil
    frame = reader.query("SELECT '50%' AS pct, '?' AS mark, 7 % 4 AS m")
    assert frame.iloc[0].tolist() == ["50%", "?", 3]
    assert reader.query("SELECT COUNT(*) AS n FROM runs WHERE run_id = ?", ("?",))["n"].item() == 0


def test_replayed_values_replace_earlier_replays_not_records(backend: str) -> None:
    writer = StoreWriter()
    run = {"run_id": "r1", "projid": "p", "filename": "f.py", "tstamp": "t", "status": "finished"}
    writer.insert_run({**run, "mode": "record", "started": 1.0, "heartbeat": 1.0})
    loops = [("r1", 1, None, "epoch", 0, None)]
    recorded = [("r1", "t", 1, "loss", "1.0", "float", 1, None, "")]
    writer.write_batch("r1", loops, recorded, [(2.5, 1)], 3.0)
    for replay, value in (("x1", "2.0"), ("x2", "3.0")):
        writer.insert_run(
            {**run, "run_id": replay, "mode": "replay", "replay_of": "r1", "started": 2.0}
        )
        replayed = [
            ("r1", "t", 1, "gn", value, "float", 2, replay, replay),
            ("r1", "t", None, "top", value, "float", 3, replay, replay),
        ]
        writer.write_batch(replay, loops, replayed, [], 4.0, ("gn", "top"))
    writer.close()
    df = flor.dataframe("loss", "gn")
    assert df[["epoch", "loss", "gn"]].values.tolist() == [[0, 1.0, 3.0]]
    assert flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'gn'")["n"].item() == 1
    assert flor.query("SELECT seconds FROM loops")["seconds"].item() == 2.5


WRITER = """\
import os, sys, time
from flor.store.writer import StoreWriter

run_id, count = sys.argv[1], int(sys.argv[2])
writer = StoreWriter()
now = time.time()
writer.insert_run({"run_id": run_id, "projid": "p", "filename": "w.py", "tstamp": "t",
                   "status": "running", "mode": "record", "started": now, "heartbeat": now})
batch = 500  # what the runtime flushes about every half second in a busy loop
for start in range(0, count, batch):
    ids = range(start, min(start + batch, count))
    loops = [(run_id, i + 1, None, "i", i, None) for i in ids]
    logs = [(run_id, "t", i + 1, "v", str(i), "int", i + 1, None, "") for i in ids]
    writer.write_batch(run_id, loops, logs, [], time.time())
writer.update_run(run_id, status="finished", ended=time.time())
writer.close()
"""


def _writers(processes: int, per_process: int, cwd: Path) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"writer{n}", str(per_process)],
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]


def test_many_writers_lose_nothing(backend: str, tmp_path: Path) -> None:
    processes, per_process = 8, 20_000
    admin.migrate()
    started = time.perf_counter()
    running = _writers(processes, per_process, tmp_path)
    errors = [p.communicate(timeout=240)[1] for p in running]
    assert [p.returncode for p in running] == [0] * processes, errors
    assert not any("locked" in e for e in errors), errors
    total = flor.query("SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS r FROM logs")
    assert total.iloc[0].tolist() == [processes * per_process, processes]
    df = flor.dataframe("v")
    assert len(df) == processes * per_process
    assert df["v"].sum() == processes * sum(range(per_process))
    seconds = time.perf_counter() - started
    print(f"{backend}: {processes} writers x {per_process} values in {seconds:.1f} s")


REPLAYABLE = """\
import flor

w = [0.0]
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        w[0] += epoch
        flor.log("w", w[0])
"""


@pytest.mark.parametrize(
    "backend",
    ["sqlite", "postgresql"],
    indirect=True,
)
def test_replay_reads_and_writes_the_server_while_runs_record(backend: str, repo, script) -> None:  # type: ignore[no-untyped-def]
    train = script("train.py", REPLAYABLE)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run()
    train.path.write_text(
        REPLAYABLE.replace(
            'flor.log("w", w[0])\n', 'flor.log("w", w[0])\n        flor.log("double", 2 * w[0])\n'
        )
    )
    recording = _writers(2, 5_000, repo)
    summary = execute(plan(["double"], jobs=2))
    assert [p.communicate(timeout=120)[1] for p in recording] == ["", ""]
    assert not summary.failed, [r.tail for r in summary.failed]
    df = flor.dataframe("w", "double")
    df = df[df["filename"] == "train.py"]
    assert df["double"].tolist() == [2 * x for x in df["w"]] == [0.0, 2.0, 6.0, 12.0]
    assert flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'v'")["n"].item() == 10_000


def test_copy_moves_finished_runs_once(script, pg_url, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "local"))
    _record(script, "--kwargs", "lr=0.1")
    _record(script, "--kwargs", "lr=0.2")
    local = flor.dataframe("lr", "loss", "words", "meta")
    first = admin.copy(pg_url)
    assert (first.copied, first.skipped, first.values) == (2, 0, 2 * (3 * 9 + 5))
    again = admin.copy(pg_url)
    assert (again.copied, again.skipped) == (0, 2)
    monkeypatch.setenv("FLOR_STORE", pg_url)
    pd.testing.assert_frame_equal(local, flor.dataframe("lr", "loss", "words", "meta"))
    assert admin.info().counts["logs"] == 2 * (3 * 9 + 5)
    with pytest.raises(UsageError, match="is the store being copied"):
        admin.copy(pg_url)


LONG_CURVE = f"""\
import flor
for step in flor.loop("step", range({SUMMARY_AT})):
    flor.log("loss", 1.0 / (step + 1))
"""


def _curves() -> list[tuple[str, str, int, str]]:
    query = "SELECT run_id, name, total, body FROM curves ORDER BY run_id, name"
    return [tuple(row) for row in flor.query(query).itertuples(index=False)]


def test_a_curve_summary_is_copied_and_deleted_with_its_run(
    script, pg_url, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "local"))
    script("long.py", LONG_CURVE).run()
    summaries = _curves()
    [(run_id, name, total, _)] = summaries  # the run's end summarized its long curve
    assert (name, total) == ("loss", SUMMARY_AT)
    assert admin.copy(pg_url).copied == 1
    monkeypatch.setenv("FLOR_STORE", pg_url)
    assert _curves() == summaries  # `flor ui` on the server reads the same summary
    monkeypatch.delenv("FLOR_STORE")
    admin.delete_run(run_id)
    assert _curves() == []  # no summary outlives its run


def test_urls_are_checked_and_passwords_masked() -> None:
    assert parse("postgresql://u:pw@h:5/db").is_postgres
    assert parse("postgres://u:pw@h/db").is_postgres
    assert parse("postgresql+psycopg://u:pw@h/db").url == "postgresql://u:pw@h/db"
    assert parse("sqlite:////tmp/x/flor.db").path == Path("/tmp/x/flor.db")
    for bad in ("mysql://u:pw@h/db", "redis://h", "just-a-path"):
        with pytest.raises(UsageError, match="unsupported store URL") as caught:
            parse(bad)
        assert "pw" not in str(caught.value)
    assert str(parse("postgresql://u:pw@h:5/db")) == "postgresql://u:***@h:5/db"
    assert mask("failed for postgresql://a:b%40c@h/db and password=hunter2 x") == (
        "failed for postgresql://a:***@h/db and password=*** x"
    )


def test_unreachable_server_fails_fast_and_writes_nothing(repo, script, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLOR_STORE", "postgresql://flor:hunter2@127.0.0.1:1/db")
    train = script("train.py", TRAIN)
    started = time.perf_counter()
    done = train.run(check=False)
    assert time.perf_counter() - started < 5 + 3  # connection timeout plus interpreter start
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the PostgreSQL store" in lines[0]
    assert "hunter2" not in done.stderr + done.stdout
    assert not (repo / ".flor" / "flor.db").exists()
    assert git(repo, "for-each-ref", "refs/flor") == ""


def test_python_process_never_imports_psycopg_for_sqlite(repo) -> None:
    code = "import sys, flor; flor.dataframe; print('psycopg' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _tables() -> dict[str, list[tuple[object, ...]]]:
    """Every row of the run tables, in one order on both backends."""
    keys = {"runs": "run_id", "loops": "run_id, ctx_id", "commits": "run_id, tstamp"}
    keys["logs"] = "run_id, name, writer, tstamp, type, seq"
    found = open_backend()
    return {
        table: [tuple(r) for r in found.query(f"SELECT * FROM {table} ORDER BY {key}").rows]
        for table, key in keys.items()
    }


def test_a_schema_5_store_keeps_every_row_when_logs_get_the_name_index(
    backend: str, script
) -> None:  # type: ignore[no-untyped-def]
    """Schema 6 moved `logs`' secondary index from (run, ctx) to (name, run, ctx); a store
    recorded before keeps every row and answers the same, on both backends."""
    _record(script, "--kwargs", "lr=0.5")
    _record(script, "--kwargs", "lr=0.25", "name=two")
    rows, frame = _tables(), flor.dataframe("lr", "name", "loss", "acc", "words", "meta")
    assert len(rows["logs"]) == 2 * (3 * (4 + 2 + 3) + 5)
    writer = StoreWriter()

    def to_schema_5(conn) -> None:  # type: ignore[no-untyped-def]
        conn.execute("DROP INDEX logs_by_name")
        conn.execute("CREATE INDEX logs_by_run ON logs (run_id, ctx_id)")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")

    writer.transaction(to_schema_5)
    writer.close()
    assert open_backend().version() == 5
    assert admin.migrate()[1:] == (5, SCHEMA_VERSION)
    assert _tables() == rows
    after = flor.dataframe("lr", "name", "loss", "acc", "words", "meta")
    pd.testing.assert_frame_equal(after, frame)
    indexes = {"sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
               "postgresql": "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'logs' "
               "AND schemaname = current_schema()"}  # fmt: skip
    names = set(reader.query(indexes[backend])["name"])
    assert "logs_by_name" in names and "logs_by_run" not in names


def test_a_replay_replaces_only_other_replays_values_of_its_names(backend: str) -> None:
    """The replacement `write_batch(replace_names=...)` makes: earlier replays' values of
    those names in the same contexts go (in loops and outside them); the recorded values,
    other names, other contexts and the replay's own earlier rows stay."""
    admin.migrate()
    writer = StoreWriter()
    now = 1.0
    writer.insert_run(
        {"run_id": "r1", "projid": "p", "filename": "f.py", "tstamp": "t", "status": "finished",
         "mode": "record", "started": now, "heartbeat": now}
    )  # fmt: skip
    loops = [("r1", ctx, None, "epoch", ctx - 1, None) for ctx in (1, 2)]

    def row(ctx: int | None, name: str, value: int, seq: int, replay: str | None) -> tuple:  # type: ignore[type-arg]
        return ("r1", "t", ctx, name, str(value), "int", seq, replay, replay or "")

    writer.write_batch(
        "r1",
        loops,
        [row(1, "gn", 10, 1, None), row(1, "gn", 11, 2, "a"), row(2, "gn", 12, 3, "a"),
         row(None, "gn", 13, 4, "a"), row(1, "other", 14, 5, "a")],
        [],
        now,
    )  # fmt: skip
    writer.write_batch("r1", [], [row(1, "gn", 20, 6, "b")], [], now, replace_names=("gn",))
    writer.write_batch("r1", [], [row(None, "gn", 21, 7, "b")], [], now, replace_names=("gn",))
    writer.write_batch("r1", [], [row(1, "gn", 22, 8, "b")], [], now, replace_names=("gn",))
    writer.close()
    kept = reader.query("SELECT ctx_id, name, value, writer FROM logs ORDER BY seq").itertuples(
        index=False
    )
    assert [tuple(None if pd.isna(v) else v for v in r) for r in kept] == [
        (1, "gn", "10", ""),  # recorded: never replaced
        (2, "gn", "12", "a"),  # another context
        (1, "other", "14", "a"),  # another name
        (1, "gn", "20", "b"),  # the replay's own earlier row
        (None, "gn", "21", "b"),
        (1, "gn", "22", "b"),
    ]
