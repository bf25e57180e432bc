"""Reading the store back: the pivoted dataframe, read-only SQL, run listings."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from flor.errors import QueryError, UsageError
from flor.store.backend import Connection, Target, open_target, target_exists
from flor.store.columns import ColumnReader, RunLoops, loop_rows
from flor.store.pivot import RUN_KEYS, ValueGroup, pivot
from flor.store.reads import locate
from flor.store.status import effective_status

_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}


def _target(home: Path | None) -> Target:
    """The store to read, after flushing this process's own run so it sees its logs."""
    from flor.runtime import session

    if session._session is not None:
        session._session.flush()
    return locate(home)


def open_reader(home: Path | None = None) -> Any:
    """A read-only connection (one consistent snapshot on PostgreSQL), SQLite-dialect SQL."""
    return open_target(_target(home))


def _frame(cursor: Any) -> pd.DataFrame:
    columns = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def query(sql: str, params: Sequence[Any] = (), home: Path | None = None) -> pd.DataFrame:
    """Run one read-only statement; `?` marks parameters on both backends."""
    target = _target(home)
    if target.is_postgres:
        from flor.store.postgres import query as pg_query

        return pg_query(target, sql, params)
    conn = open_reader(home)

    def only_reads(action: int, *_: Any) -> int:
        return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

    conn.set_authorizer(only_reads)
    try:
        return _frame(conn.execute(sql, tuple(params)))
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if "not authorized" in message or "readonly" in message:
            raise QueryError(
                "flor query only reads: use SELECT (or WITH ... SELECT) statements"
            ) from exc
        raise QueryError(f"invalid SQL: {message}: check the statement") from exc
    except (ValueError, sqlite3.Warning) as exc:
        raise QueryError(f"invalid SQL: {exc}: pass one statement") from exc
    finally:
        conn.close()


# -- the pivoted dataframe ------------------------------------------------------------------


READ_THREADS = 2  # SQLite computes one run's joined text while Python parses another's


def dataframe(names: Sequence[str], home: Path | None = None) -> pd.DataFrame:
    for name in names:
        if not isinstance(name, str) or not name:
            raise UsageError(f"dataframe names must be non-empty strings, got {name!r}")
    target = _target(home)
    connections = [open_target(target) for _ in range(1 if target.is_postgres else READ_THREADS)]
    try:
        return _dataframe(connections, list(dict.fromkeys(names)))
    finally:
        for each in connections:
            each.close()


def _dataframe(connections: list[Connection], names: list[str]) -> pd.DataFrame:
    runs = _frame(
        connections[0].execute("SELECT run_id, projid, filename FROM runs WHERE mode = 'record'")
    )
    run_ids = list(runs["run_id"])
    share = len(connections)

    def read(part: int) -> list[tuple[int, tuple[list[ValueGroup], RunLoops | None]]]:
        reader = ColumnReader(connections[part], names)
        return [(run, reader.run(run_ids[run], run)) for run in range(part, len(run_ids), share)]

    with ThreadPoolExecutor(share) as pool:
        fetched = sorted(
            (item for part in pool.map(read, range(share)) for item in part), key=lambda i: i[0]
        )
    groups = [group for _, (found, _) in fetched for group in found]
    if not groups:
        return pd.DataFrame(columns=[*RUN_KEYS, *names])
    loops = [(run, run_loops) for run, (_, run_loops) in fetched if run_loops is not None]
    return pivot(groups, runs, loop_rows(loops), names)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the newest tstamp within each (projid, filename)."""
    if df.empty or "tstamp" not in df.columns:
        return df
    groups = [c for c in ("projid", "filename") if c in df.columns]
    newest = df.groupby(groups)["tstamp"].transform("max") if groups else df["tstamp"].max()
    return df[df["tstamp"] == newest]


# -- runs ------------------------------------------------------------------------------------


def runs(home: Path | None = None, *, include_replays: bool = False) -> pd.DataFrame:
    conn = open_reader(home)
    try:
        mode = "" if include_replays else "WHERE r.mode = 'record'"
        frame = _frame(
            conn.execute(
                "SELECT r.*, (SELECT COALESCE(SUM(c.bytes), 0) FROM checkpoints c "
                "WHERE c.run_id = r.run_id) AS checkpoint_bytes "
                f"FROM runs r {mode} ORDER BY r.started"
            )
        )
    finally:
        conn.close()
    if frame.empty:
        return frame
    now = time.time()
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    frame["status"] = [effective_status(row, now) for row in records]
    frame["duration_s"] = [
        round((end if end == end and end is not None else hb) - start, 3)
        for start, end, hb in zip(frame["started"], frame["ended"], frame["heartbeat"], strict=True)
    ]
    return frame


def find_run(run: str, home: Path | None = None) -> dict[str, Any]:
    """A run by id or unique id prefix."""
    frame = runs(home, include_replays=True)
    matches = frame[frame["run_id"].str.startswith(run)] if not frame.empty else frame
    if len(matches) != 1:
        problem = "no run" if matches.empty else f"{len(matches)} runs"
        raise UsageError(f"{problem} with id {run!r}: `flor runs` lists the run ids")
    record: dict[str, Any] = matches.iloc[0].to_dict()  # type: ignore[assignment]
    return record


def store_exists(home: Path | None = None) -> bool:
    """Whether the project's store (a server when `FLOR_STORE` is set) holds a schema yet."""
    return target_exists(_target(home))
