"""Reading the store back: the pivoted dataframe, read-only SQL, run listings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from flor.errors import UsageError
from flor.store.backend import (
    Connection,
    Dialect,
    ReadConnection,
    Target,
    open_backend,
)
from flor.store.columns import ColumnReader, RunLoops, loop_rows
from flor.store.pivot import RUN_KEYS, ValueGroup, pivot
from flor.store.reads import flush_recording, locate
from flor.store.status import effective_status


def _target(home: Path | None) -> Target:
    """The store to read, after flushing this process's own run so it sees its logs."""
    flush_recording()
    return locate(home)


def open_reader(home: Path | None = None) -> ReadConnection:
    """A read-only connection (one consistent snapshot on PostgreSQL), SQLite-dialect SQL."""
    return open_backend(_target(home)).reader()


def _frame(cursor: Any) -> pd.DataFrame:
    columns = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def query(sql: str, params: Sequence[Any] = (), home: Path | None = None) -> pd.DataFrame:
    """Run one read-only statement; `?` marks parameters on both backends."""
    result = open_backend(_target(home)).query(sql, params)
    return pd.DataFrame.from_records(result.rows, columns=result.columns)


# -- the pivoted dataframe ------------------------------------------------------------------


def dataframe(names: Sequence[str], home: Path | None = None) -> pd.DataFrame:
    for name in names:
        if not isinstance(name, str) or not name:
            raise UsageError(f"dataframe names must be non-empty strings, got {name!r}")
    backend = open_backend(_target(home))
    connections = [backend.reader() for _ in range(backend.parallel_reads)]
    try:
        with small_pages():
            return _dataframe(connections, backend.dialect, list(dict.fromkeys(names)))
    finally:
        for each in connections:
            each.close()


def _hugepage_switch() -> Callable[[bool], bool] | None:
    """numpy's setter of its huge-page advice (returns the previous setting), if it has one."""
    import numpy as np

    for module in ("_core", "core"):  # numpy 2, numpy 1
        found = getattr(getattr(np, module, None), "multiarray", None)
        switch = getattr(found, "_set_madvise_hugepage", None)
        if callable(switch):
            return switch  # type: ignore[no-any-return]
    return None


_pages_lock = threading.Lock()
_pages_readers = 0
_pages_before = True


@contextmanager
def small_pages() -> Iterator[None]:
    """Ordinary pages for numpy's arrays while a dataframe is built.

    numpy advises Linux to back every array of 4 MB or more with transparent huge pages;
    where the kernel compacts memory to find them on first touch (THP `defrag=madvise`,
    a common default), a read of 10^6 values spent about 1 s of system time faulting its
    arrays in, against 0.2 s with ordinary pages and the same user time
    (`benchmarks/RESULTS.md`). The advice is numpy's process-wide switch: it is turned
    off while any dataframe is being built and restored as it was when the last one ends.
    """
    global _pages_readers, _pages_before
    switch = _hugepage_switch()
    if switch is None:
        yield
        return
    with _pages_lock:
        if _pages_readers == 0:
            _pages_before = switch(False)
        _pages_readers += 1
    try:
        yield
    finally:
        with _pages_lock:
            _pages_readers -= 1
            if _pages_readers == 0:
                switch(_pages_before)


def _dataframe(
    connections: Sequence[Connection], dialect: Dialect, names: list[str]
) -> pd.DataFrame:
    runs = _frame(
        connections[0].execute("SELECT run_id, projid, filename FROM runs WHERE mode = 'record'")
    )
    run_ids = list(runs["run_id"])
    share = len(connections)

    def read(part: int) -> list[tuple[int, tuple[list[ValueGroup], RunLoops | None]]]:
        reader = ColumnReader(connections[part], names, dialect)
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
        _duration(start, end, hb)
        for start, end, hb in zip(frame["started"], frame["ended"], frame["heartbeat"], strict=True)
    ]
    return frame


def _duration(started: float, ended: float | None, heartbeat: float | None) -> float | None:
    """Until the end, else the last heartbeat; unknown for a run that never sent either
    (killed before its first heartbeat, or written by another tool)."""
    last = next((t for t in (ended, heartbeat) if t is not None and t == t), None)
    return None if last is None else round(last - started, 3)


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
    return open_backend(_target(home)).exists()
