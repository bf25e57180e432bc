"""Reading the store back: the pivoted dataframe, read-only SQL, run listings."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from flor.errors import QueryError, StoreError, UsageError
from flor.store.location import db_path, home_dir
from flor.store.schema import connect
from flor.store.values import decode

RUN_KEYS = ["projid", "runid", "tstamp", "filename"]
STALE_HEARTBEAT_S = 30.0
_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}


def open_reader(home: Path | None = None) -> sqlite3.Connection:
    """A read-only connection; flushes this process's own run first so it sees its logs."""
    from flor.runtime import session

    if session._session is not None:
        session._session.flush()
        home = home or session._session.home
    return connect(db_path(home or home_dir()), readonly=True)


def _frame(cursor: sqlite3.Cursor) -> pd.DataFrame:
    columns = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def query(sql: str, params: Sequence[Any] = (), home: Path | None = None) -> pd.DataFrame:
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


def _typed(values: pd.Series, kinds: pd.Series) -> pd.Series:
    """Decode stored text; numbers are converted in bulk, everything else one by one."""
    numeric = kinds.isin(("int", "float"))
    if numeric.all():
        return pd.to_numeric(values, errors="coerce")
    out = pd.Series([decode(v, k) for v, k in zip(values, kinds, strict=True)], index=values.index)
    return out


def _coordinates(conn: sqlite3.Connection, run_ids: list[str]) -> pd.DataFrame:
    """Every loop context of these runs with its full path of (loop name, iteration, value)."""
    marks = ",".join("?" * len(run_ids))
    loops = _frame(
        conn.execute(
            "SELECT run_id, ctx_id, parent_ctx_id AS parent, name, iteration, value "
            f"FROM loops WHERE run_id IN ({marks})",
            run_ids,
        )
    )
    if loops.empty:
        return loops
    by_key = loops.set_index(["run_id", "ctx_id"])
    levels = [loops[["run_id", "ctx_id", "parent", "name", "iteration", "value"]]]
    current = levels[0]
    while current["parent"].notna().any():
        keys = pd.MultiIndex.from_arrays(
            [current["run_id"], current["parent"].fillna(-1).astype("int64")]
        )
        up = by_key.reindex(keys)
        current = pd.DataFrame(
            {
                "run_id": current["run_id"].to_numpy(),
                "ctx_id": current["ctx_id"].to_numpy(),
                "parent": up["parent"].to_numpy(),
                "name": up["name"].to_numpy(),
                "iteration": up["iteration"].to_numpy(),
                "value": up["value"].to_numpy(),
            }
        )
        levels.append(current)
    # levels[k] holds the k-th ancestor of every context; paths read outermost first
    result = loops[["run_id", "ctx_id"]].copy()
    depth = len(levels)
    path_names = []
    for k in range(depth):
        level = levels[depth - 1 - k]
        result[f"n{k}"] = level["name"].to_numpy()
        result[f"i{k}"] = level["iteration"].to_numpy()
        result[f"v{k}"] = level["value"].to_numpy()
        path_names.append(f"n{k}")
    # Shallow contexts have missing ancestors at the top: shift them to start at level 0.
    names = result[path_names].to_numpy(dtype=object)
    iters = result[[f"i{k}" for k in range(depth)]].to_numpy(dtype=object)
    values = result[[f"v{k}" for k in range(depth)]].to_numpy(dtype=object)
    paths, coords = [], []
    for row_names, row_iters, row_values in zip(names, iters, values, strict=True):
        keep = [j for j in range(depth) if isinstance(row_names[j], str)]
        paths.append(tuple(row_names[j] for j in keep))
        coords.append(tuple((row_iters[j], row_values[j]) for j in keep))
    return pd.DataFrame(
        {"run_id": result["run_id"], "ctx_id": result["ctx_id"], "path": paths, "coords": coords}
    )


def _loop_columns(path: tuple[str, ...], coords: pd.Series) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for k, loop_name in enumerate(path):
        data[loop_name] = [int(c[k][0]) for c in coords]
        data[f"{loop_name}_value"] = [
            json.loads(c[k][1]) if isinstance(c[k][1], str) else None for c in coords
        ]
    return pd.DataFrame(data, index=coords.index)


def dataframe(names: Sequence[str], home: Path | None = None) -> pd.DataFrame:
    for name in names:
        if not isinstance(name, str) or not name:
            raise UsageError(f"dataframe names must be non-empty strings, got {name!r}")
    conn = open_reader(home)
    try:
        return _dataframe(conn, list(dict.fromkeys(names)))
    finally:
        conn.close()


def _dataframe(conn: sqlite3.Connection, names: list[str]) -> pd.DataFrame:
    if names:
        marks = ",".join("?" * len(names))
        where, params = f"l.name IN ({marks})", names
    else:
        where, params = "l.ctx_id IS NULL", []
    logs = _frame(
        conn.execute(
            "SELECT r.projid, l.run_id AS runid, l.tstamp, r.filename, l.ctx_id, l.name, "
            "l.value, l.type, (l.replay_id IS NULL) AS recorded, l.seq "
            f"FROM logs l JOIN runs r ON r.run_id = l.run_id WHERE {where} "
            "AND r.mode = 'record'",
            params,
        )
    )
    if logs.empty:
        return pd.DataFrame(columns=[*RUN_KEYS, *names])
    # Recorded values win over replayed ones; later values win over earlier ones.
    logs = logs.sort_values(["recorded", "seq"], kind="stable")
    in_loops = logs["ctx_id"].notna()
    coords = _coordinates(conn, logs.loc[in_loops, "runid"].unique().tolist())
    if coords.empty:
        logs["path"] = [()] * len(logs)
    else:
        logs["ctx_id"] = logs["ctx_id"].astype("float64")
        coords["ctx_id"] = coords["ctx_id"].astype("float64")
        logs = logs.merge(
            coords.rename(columns={"run_id": "runid"}), on=["runid", "ctx_id"], how="left"
        )
        logs["path"] = [p if isinstance(p, tuple) else () for p in logs["path"]]
    value_names = names or list(dict.fromkeys(logs["name"]))
    tables: dict[tuple[str, ...], pd.DataFrame] = {}
    for key, group in logs.groupby("path", sort=False):
        path: tuple[str, ...] = key  # type: ignore[assignment]
        loop_cols = (
            _loop_columns(path, group["coords"]) if path else pd.DataFrame(index=group.index)
        )
        frame = pd.concat([group[RUN_KEYS], loop_cols], axis=1)
        keys = [*RUN_KEYS, *path]
        frame = frame.assign(name=group["name"], v=_typed(group["value"], group["type"]))
        frame = frame.drop_duplicates([*keys, "name"], keep="last")
        wide = frame.pivot(index=keys, columns="name", values="v")
        extras = (
            frame.drop_duplicates(keys).set_index(keys)[[f"{n}_value" for n in path]]
            if path
            else None
        )
        if extras is not None:
            wide = wide.join(extras)
        wide = wide.reset_index()
        wide.columns.name = None
        tables[path] = wide.rename(columns={n: f"{n}\0{len(path)}" for n in value_names})
    return _join_paths(tables, value_names)


def _join_paths(tables: dict[tuple[str, ...], pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """Deeper tables take their ancestors' values (outer join); sibling loops stack."""
    paths = list(tables)
    maximal = [p for p in paths if not any(q != p and q[: len(p)] == p for q in paths)]
    parts = []
    for leaf in maximal:
        frame = tables[leaf]
        for prefix in sorted(
            (p for p in paths if p != leaf and leaf[: len(p)] == p), key=len, reverse=True
        ):
            shared = [*RUN_KEYS, *prefix, *(f"{n}_value" for n in prefix)]
            frame = frame.merge(tables[prefix], on=shared, how="outer")
        parts.append(frame)
    merged = pd.concat(parts, ignore_index=True, sort=False) if len(parts) > 1 else parts[0]
    loop_order: list[str] = []
    for path in sorted(paths, key=len):
        for loop_name in path:
            if loop_name not in loop_order:
                loop_order.append(loop_name)
    columns: dict[str, Any] = {key: merged[key] for key in RUN_KEYS}
    for loop_name in loop_order:
        columns[loop_name] = merged[loop_name].astype("Int64")
        value_col = merged[f"{loop_name}_value"]
        if value_col.notna().any():
            columns[f"{loop_name}_value"] = value_col
    for name in names:
        variants = [
            c
            for c in merged.columns
            if isinstance(c, str) and c.split("\0")[0] == name and "\0" in c
        ]
        column = merged[variants[0]] if variants else pd.Series(pd.NA, index=merged.index)
        for extra in variants[1:]:
            column = column.combine_first(merged[extra])
        columns[name] = column
    result = pd.DataFrame(columns)
    if len(parts) > 1:  # prefix rows reached through several sibling loops appear once
        result = result[~result.astype(str).duplicated()]
    order = ["tstamp", "runid", *loop_order]
    return result.sort_values(order, kind="stable", na_position="first", ignore_index=True)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the newest tstamp within each (projid, filename)."""
    if df.empty or "tstamp" not in df.columns:
        return df
    groups = [c for c in ("projid", "filename") if c in df.columns]
    newest = df.groupby(groups)["tstamp"].transform("max") if groups else df["tstamp"].max()
    return df[df["tstamp"] == newest]


# -- runs ------------------------------------------------------------------------------------


def effective_status(row: dict[str, Any], now: float | None = None) -> str:
    """A run still marked running whose process is gone was killed (e.g. SIGKILL)."""
    if row["status"] != "running":
        return str(row["status"])
    now = now or time.time()
    if row.get("host") == socket.gethostname() and row.get("pid"):
        try:
            os.kill(int(row["pid"]), 0)
        except ProcessLookupError:
            return "killed"
        except PermissionError:
            pass
        if now - float(row.get("heartbeat") or 0) < STALE_HEARTBEAT_S:
            return "running"
    if now - float(row.get("heartbeat") or 0) > STALE_HEARTBEAT_S:
        return "killed"
    return "running"


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


def require_store(home: Path | None = None) -> Path:
    path = db_path(home or home_dir())
    if not path.exists():
        raise StoreError(f"no flor store at {path}: record a run first (python your_script.py)")
    return path
