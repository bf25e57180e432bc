"""Reads behind the web UI: run summaries with last values, one run's names, curves and
checkpoints, and replays. Plain rows (no pandas), so pages stay fast on large stores.

Every function takes a read-only connection from the store's `Backend.reader()`; what
SQLite and PostgreSQL spell differently comes from the backend's `Dialect`.
"""

from __future__ import annotations

import json
import operator
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flor.errors import StoreError
from flor.store.backend import Dialect
from flor.store.status import effective_status
from flor.store.values import decode

RUN_FIELDS = (
    "run_id, projid, filename, tstamp, status, mode, replay_of, snapshot, base_commit, "
    "branch, argv, cwd, args, host, pid, started, ended, heartbeat, error, note"
)


def fingerprint(conn: Any) -> tuple[Any, ...]:
    """Changes whenever a run starts, flushes (heartbeat), ends or is deleted."""
    row = conn.execute(
        "SELECT COUNT(*), MAX(heartbeat), MAX(ended), MAX(started) FROM runs"
    ).fetchone()
    return tuple(row)


def run_fingerprint(conn: Any, run_id: str) -> tuple[Any, ...]:
    """Changes whenever the run or a replay into it writes (each flush beats its heartbeat)."""
    own = conn.execute(
        "SELECT status, heartbeat, ended FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    replays = conn.execute(
        "SELECT COUNT(*), MAX(heartbeat), MAX(ended) FROM runs WHERE replay_of = ?", (run_id,)
    ).fetchone()
    return (*(own or ()), *replays)


def _records(cursor: Any) -> list[dict[str, Any]]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _duration(row: dict[str, Any]) -> float | None:
    end = row.get("ended") or row.get("heartbeat")
    return round(float(end) - float(row["started"]), 3) if end else None


_RUN_COLUMNS = (
    "run_id, projid, filename, tstamp, status, snapshot, args, started, ended, heartbeat, host, pid"
)


def runs(conn: Any) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (ties by id), with status as seen now, duration and
    checkpoint bytes: only the fields the pages show (10,000 runs are a page's first wait)."""
    found = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE mode = 'record' ORDER BY started, run_id"
    ).fetchall()
    stored = conn.execute("SELECT run_id, SUM(bytes) FROM checkpoints GROUP BY run_id")
    return _run_entries(found, dict(stored.fetchall()))


def runs_by_start(
    conn: Any, offset: int, limit: int, newest_first: bool, projid: str | None
) -> tuple[list[dict[str, Any]], int]:
    """One page of `runs` in the order they started (ties by id, as `runs` then a stable
    sort put them), and how many there are: a first page without reading every run."""
    where = "mode = 'record'" + (" AND projid = ?" if projid is not None else "")
    params: tuple[Any, ...] = (projid,) if projid is not None else ()
    order = "started DESC, run_id" if newest_first else "started, run_id"
    found = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    total = conn.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()[0]
    ids = [row[0] for row in found]
    stored = conn.execute(
        f"SELECT run_id, SUM(bytes) FROM checkpoints WHERE run_id IN ({_marks(ids)}) "
        "GROUP BY run_id",
        ids,
    )
    return _run_entries(found, dict(stored.fetchall())), int(total)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values) or "NULL"  # `IN ()` is SQLite's alone


def _run_entries(found: list[tuple[Any, ...]], stored: dict[str, Any]) -> list[dict[str, Any]]:
    args = _json_each([row[6] or "{}" for row in found])
    now = time.time()
    listed = []
    for row, parsed in zip(found, args, strict=True):
        run_id, projid, filename, tstamp, status, snapshot, _, started, ended, beat, host, pid = row
        entry = {
            "run_id": run_id,
            "projid": projid,
            "filename": filename,
            "tstamp": tstamp,
            "status": status,
            "snapshot": snapshot,
            "version": (snapshot or "")[:10],
            "args": parsed,
            "started": started,
            "ended": ended,
            "heartbeat": beat,
            "host": host,
            "pid": pid,
            "checkpoint_bytes": int(stored.get(run_id) or 0),
        }
        if status == "running":
            entry["status"] = effective_status(entry, now)
        end = ended or beat
        entry["duration_s"] = round(float(end) - float(started), 3) if end else None
        listed.append(entry)
    return listed


def overview(conn: Any) -> tuple[int, list[str], list[str]]:
    """How many recorded runs there are, and their projects and scripts."""
    count = conn.execute("SELECT COUNT(*) FROM runs WHERE mode = 'record'").fetchone()[0]
    projects, scripts = (
        [
            value
            for (value,) in conn.execute(
                f"SELECT DISTINCT {column} FROM runs WHERE mode = 'record' ORDER BY {column}"
            ).fetchall()
        ]
        for column in ("projid", "filename")
    )
    return int(count), projects, scripts


def _json_each(texts: list[str]) -> list[Any]:
    """`json.loads` of each text, in one call when all parse (10,000 calls cost more)."""
    found: list[Any] | None
    try:
        found = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        found = None
    if found is None or len(found) != len(texts):  # a text that is not one JSON value
        found = [json.loads(text) for text in texts]
    return found


def last_values(conn: Any, dialect: Dialect) -> dict[str, dict[str, Any]]:
    """Each run's last value of each name: the recorded one, else the replayed one.

    One pass over `logs` in key order (run, name, writer), the last `seq` of each group,
    around the runs that stored a long curve's summary (`curves`): those are read by index
    seeks (`last_values_of`), so a run of 10^6 values costs a few seeks, not a pass."""
    long_runs = sorted(r for (r,) in conn.execute("SELECT DISTINCT run_id FROM curves"))
    columns = "run_id, name, writer = '', value, type"
    found: dict[str, dict[str, Any]] = {}
    rows: list[tuple[Any, ...]] = []
    bounds: list[str | None] = [None, *long_runs, None]
    for low, high in zip(bounds, bounds[1:], strict=False):
        between = [f"run_id {op} ?" for op, end in ((">", low), ("<", high)) if end is not None]
        table = f"(SELECT * FROM logs WHERE {' AND '.join(between)}) AS part" if between else "logs"
        params = [end for end in (low, high) if end is not None]
        query = dialect.latest(table, "run_id, name, writer", "seq", columns)
        rows += conn.execute(query, params).fetchall()
    # replayed values first, in writer order (the last writer's stays), then the recorded
    # ones over them: a recorded value always wins
    for wanted in (False, True):
        for run_id, name, is_recorded, value, kind, _ in rows:
            if bool(is_recorded) is wanted:
                values = found.get(run_id)
                if values is None:
                    values = found[run_id] = {}
                values[name] = float(value) if kind == "float" and value else decode(value, kind)
    found.update(last_values_of(conn, long_runs))
    return found


def last_values_of(conn: Any, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`last_values` of a few runs (a page), by index seeks only: a run with 10^6 values
    costs the same few seeks as a run with ten, where a GROUP BY would read them all."""
    found: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        for name in _distinct(conn, "name", "run_id = ?", (run_id,)):
            key = (run_id, name)
            writers = _distinct(conn, "writer", "run_id = ? AND name = ?", key)
            group = (*key, "" if "" in writers else writers[-1])
            tstamp = conn.execute(
                "SELECT MAX(tstamp) FROM logs WHERE run_id = ? AND name = ? AND writer = ?", group
            ).fetchone()[0]
            last = _edge(conn, group, tstamp, "DESC")
            found.setdefault(run_id, {})[name] = decode(last[0], last[1])
    return found


def last_of_names(conn: Any, dialect: Dialect, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each run's last value of each of `names`: the one its recorded run logged last
    (greatest `seq`), else, for a name only replays logged, the one the greatest replay id
    logged last. Per name, one grouped read of its values around the runs that stored a
    summary of its curve (`curves`: 20,000 values or more), whose last values are found by
    index seeks instead (`last_values_of`): a run of 10^6 values of a name costs a few
    seeks, not a read of them all."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        long_runs = sorted(
            r for (r,) in conn.execute("SELECT run_id FROM curves WHERE name = ?", (name,))
        )
        last: dict[str, tuple[str, Any, Any]] = {}  # run: (writer, value, type)
        bounds: list[str | None] = [None, *long_runs, None]
        for low, high in zip(bounds, bounds[1:], strict=False):
            between = [f"run_id {op} ?" for op, end in ((">", low), ("<", high)) if end is not None]
            table = f"(SELECT * FROM logs WHERE {' AND '.join(['name = ?', *between])}) AS part"
            query = dialect.latest(table, "run_id, writer", "seq", "run_id, writer, value, type")
            params = [name, *(end for end in (low, high) if end is not None)]
            for run_id, writer, value, kind, _ in conn.execute(query, params).fetchall():
                mine = last.get(run_id)
                # the recorded writer ('') first, else the greatest replay id
                if mine is None or (mine[0] != "" and (writer == "" or writer > mine[0])):
                    last[run_id] = (writer, value, kind)
        for run_id, (_, value, kind) in last.items():
            found.setdefault(run_id, {})[name] = decode(value, kind)
        for run_id, values in last_values_of(conn, long_runs).items():
            if name in values:
                found.setdefault(run_id, {})[name] = values[name]
    return found


def run(conn: Any, run_id: str) -> dict[str, Any] | None:
    cursor = conn.execute(
        f"SELECT {RUN_FIELDS}, (SELECT COALESCE(SUM(bytes), 0) FROM checkpoints c "
        "WHERE c.run_id = runs.run_id) AS checkpoint_bytes FROM runs WHERE run_id = ?",
        (run_id,),
    )
    found = _records(cursor)
    if not found:
        return None
    row = found[0]
    row["status"] = effective_status(row, time.time())
    row["duration_s"] = _duration(row)
    row["args"] = json.loads(row["args"] or "{}")
    row["argv"] = json.loads(row["argv"] or "[]")
    return row


def run_ids_starting(conn: Any, prefix: str) -> list[str]:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cursor = conn.execute(
        "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id LIMIT 3",
        (escaped + "%",),
    )
    return [r[0] for r in cursor.fetchall()]


@dataclass
class Logged:
    """One name logged in a run: where it sits (loop path) and who wrote it."""

    name: str
    loops: list[str]
    count: int
    recorded: bool
    replayed: bool
    final: Any = None


def loop_path(conn: Any, run_id: str, ctx_id: int | None) -> list[str]:
    """Names of the loops enclosing a context, outermost first."""
    path: list[str] = []
    while ctx_id is not None:
        row = conn.execute(
            "SELECT parent_ctx_id, name FROM loops WHERE run_id = ? AND ctx_id = ?",
            (run_id, ctx_id),
        ).fetchone()
        if row is None:
            break
        path.insert(0, row[1])
        ctx_id = row[0]
    return path


def _distinct(conn: Any, column: str, where: str, params: tuple[Any, ...]) -> list[Any]:
    """The distinct values of a key column, one index seek each (a loose index scan), so a
    run with 10^6 values of one name costs a few seeks rather than a pass over them all."""
    found: list[Any] = []
    while True:
        after = f" AND {column} > ?" if found else ""
        row = conn.execute(
            f"SELECT MIN({column}) FROM logs WHERE {where}{after}", (*params, *found[-1:])
        ).fetchone()
        if row is None or row[0] is None:
            return found
        found.append(row[0])


def logged(conn: Any, run_id: str) -> list[Logged]:
    """The names a run logged, in first-logged order, with their depth and last value."""
    found: dict[str, Logged] = {}
    first: dict[str, tuple[Any, ...]] = {}
    summarized = dict(  # recorded values counted when the run ended: no pass over 10^6
        conn.execute("SELECT name, total FROM curves WHERE run_id = ?", (run_id,)).fetchall()
    )
    for name in _distinct(conn, "name", "run_id = ?", (run_id,)):
        key = (run_id, name)
        for writer in _distinct(conn, "writer", "run_id = ? AND name = ?", key):
            group = (*key, writer)
            where = "run_id = ? AND name = ? AND writer = ?"
            if writer == "" and name in summarized:
                count = summarized[name]
            else:
                count = conn.execute(f"SELECT COUNT(*) FROM logs WHERE {where}", group).fetchone()
                count = count[0]
            # MIN and MAX apart: each is one index seek, together they read the whole range
            tstamps = [
                conn.execute(f"SELECT {end}(tstamp) FROM logs WHERE {where}", group).fetchone()[0]
                for end in ("MIN", "MAX")
            ]
            last = _edge(conn, group, tstamps[1], "DESC")
            start = _edge(conn, group, tstamps[0], "ASC")
            entry = found.get(name)
            if entry is None:
                path = loop_path(conn, run_id, last[3])
                entry = found[name] = Logged(name, path, 0, False, False)
            entry.count += int(count)
            value = decode(last[0], last[1])
            if writer == "":
                entry.recorded, entry.final = True, value
            else:
                entry.replayed = True
                if not entry.recorded:
                    entry.final = value
            order = (tstamps[0], start[2])
            first[name] = min(first.get(name, order), order)
    return sorted(found.values(), key=lambda e: (len(e.loops), first[e.name]))


def _edge(conn: Any, group: tuple[Any, ...], tstamp: Any, direction: str) -> tuple[Any, ...]:
    """(value, type, seq, ctx_id) of a group's last (DESC) or first (ASC) value within one
    tstamp, across its types, each read at one end of the primary key."""
    where = "run_id = ? AND name = ? AND writer = ? AND tstamp = ?"
    rows: list[tuple[Any, ...]] = [
        conn.execute(
            f"SELECT value, type, seq, ctx_id FROM logs WHERE {where} AND type = ? "
            f"ORDER BY seq {direction} LIMIT 1",
            (*group, tstamp, kind),
        ).fetchone()
        for kind in _distinct(conn, "type", where, (*group, tstamp))
    ]
    ordered = sorted(rows, key=operator.itemgetter(2))  # by seq
    return tuple(ordered[-1] if direction == "DESC" else ordered[0])


def checkpoints(conn: Any, run_id: str) -> list[dict[str, Any]]:
    return _records(
        conn.execute(
            "SELECT iteration, object, digest, bytes, seconds FROM checkpoints "
            "WHERE run_id = ? ORDER BY iteration, object",
            (run_id,),
        )
    )


def replays_of(conn: Any, run_id: str) -> list[dict[str, Any]]:
    """The replay tasks that wrote into a run, with the names and counts each added."""
    tasks = _records(
        conn.execute(
            "SELECT run_id AS replay_id, status, started, ended, heartbeat, host, pid "
            "FROM runs WHERE replay_of = ? ORDER BY started",
            (run_id,),
        )
    )
    now = time.time()
    for task in tasks:
        task["status"] = effective_status(task, now)
        counts = conn.execute(
            "SELECT name, COUNT(*) FROM logs WHERE run_id = ? AND writer = ? "
            "GROUP BY name ORDER BY name",
            (run_id, task["replay_id"]),
        ).fetchall()
        task["values"] = {name: int(n) for name, n in counts}
    return tasks


def replay_progress(conn: Any, replay_ids: Sequence[str]) -> tuple[int, int]:
    """(tasks ended, values written) of a replay's tasks, read while it runs."""
    if not replay_ids:
        return 0, 0
    marks = ",".join("?" * len(replay_ids))
    ended = conn.execute(
        f"SELECT COUNT(*) FROM runs WHERE run_id IN ({marks}) AND status != 'running'",
        tuple(replay_ids),
    ).fetchone()[0]
    values = conn.execute(
        f"SELECT COUNT(*) FROM logs WHERE replay_id IN ({marks})", tuple(replay_ids)
    ).fetchone()[0]
    return int(ended), int(values)


@dataclass
class Series:
    """One name's numeric values in one run, in loop order, with an x for each axis."""

    name: str
    loops: list[str]
    x: dict[str, list[float]] = field(default_factory=dict)
    y: list[float] = field(default_factory=list)
    total: int = 0
    skipped: int = 0
    replayed: bool = False
    downsampled: str = ""


def series(
    conn: Any,
    run_id: str,
    name: str,
    max_points: int,
    loops_conn: Any = None,
    *,
    dialect: Dialect,
    stored: bool = True,
) -> Series:
    """The curve of `name` in `run_id`: x per loop depth (e.g. `epoch` with fractional steps,
    and `step` counted across epochs), downsampled on the server beyond `max_points`
    (the min and max of each bucket, so spikes survive). A long curve whose run has ended
    is read from its summary in `curves` (see `store_curves`) unless `stored` is False.
    With `loops_conn`, the run's loops are read on it while `conn` reads the values (SQLite
    runs both at once, off the GIL)."""
    summary = _stored_curve(conn, run_id, name, max_points) if stored else None
    if summary is not None:
        return summary  # before importing numpy: a first view need not wait
    recorded = (
        conn.execute(
            "SELECT 1 FROM logs WHERE run_id = ? AND name = ? AND writer = '' LIMIT 1",
            (run_id, name),
        ).fetchone()
        is not None
    )
    if loops_conn is None:
        ctx, numeric = _curve_values(conn, dialect, run_id, name, recorded)
        tree = _loop_tree(conn, run_id, dialect)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_loop_tree, loops_conn, run_id, dialect)
            ctx, numeric = _curve_values(conn, dialect, run_id, name, recorded)
            tree = pending.result()
    if not len(ctx):
        return Series(name, [])
    return _curve(conn, run_id, name, ctx, numeric, tree, max_points, not recorded)


def _curve_values(
    conn: Any, dialect: Dialect, run_id: str, name: str, recorded: bool
) -> tuple[Any, Any]:
    """(contexts, numbers) of a name's recorded values, or else of its replayed ones, in
    key order (writer, tstamp, type, seq); values that are not numbers come last as NaN.
    Numbers are joined by the store and parsed by numpy: no pandas, no value decoded."""
    import numpy as np

    where = f"run_id = ? AND name = ? AND writer {'=' if recorded else '!='} ''"
    order = "writer, tstamp, type, seq"
    joined_ctx = dialect.concat("COALESCE(ctx_id, -1)", ",", order)
    joined_values = dialect.concat("value", ",", order)
    count, ctx, values = conn.execute(
        f"SELECT COUNT(*), {joined_ctx}, {joined_values} FROM logs WHERE {where} "
        "AND type IN ('int', 'float')",
        (run_id, name),
    ).fetchone()
    others = conn.execute(
        f"SELECT COUNT(*) FROM logs WHERE {where} AND type NOT IN ('int', 'float')",
        (run_id, name),
    ).fetchone()[0]
    numeric = np.array(values.split(","), dtype=np.float64) if values else np.zeros(0)
    numeric = np.concatenate([numeric, np.full(int(others), np.nan)])
    return np.concatenate([_ints(ctx, count), np.full(int(others), -1)]), numeric


def _curve(
    conn: Any,
    run_id: str,
    name: str,
    ctx: Any,
    numeric: Any,
    tree: tuple[Any, Any, Any],
    max_points: int,
    replayed: bool,
) -> Series:
    """A curve from its values (NaN where not a number) and their contexts, in loop order."""
    import numpy as np

    out = Series(name, [], replayed=replayed)
    keep = ~np.isnan(numeric)
    out.skipped = int((~keep).sum())
    ctx, y = ctx[keep], numeric[keep]
    out.total = len(y)
    levels, out.loops = _levels(conn, run_id, ctx, tree)
    if levels:
        order = np.lexsort(tuple(reversed(levels)))
        levels = [level[order] for level in levels]
        y = y[order]
    xs = _axes(levels, out.loops, len(y))
    picked = _downsample(y, max_points)
    if picked is not None:
        out.downsampled = f"min/max of {len(picked) // 2} buckets over {len(y)} values"
        y = y[picked]
        xs = {axis: values[picked] for axis, values in xs.items()}
    out.y = y.tolist()
    out.x = {axis: values.tolist() for axis, values in xs.items()}
    return out


def _loop_tree(conn: Any, run_id: str, dialect: Dialect) -> tuple[Any, Any, Any]:
    """A run's loop contexts in ctx order as arrays (ctx ids, parents or -1, iterations),
    without their names: a curve needs the name of one context per depth, not of 10^6."""
    joined = [
        dialect.concat(column, ",", "ctx_id")
        for column in ("ctx_id", "COALESCE(parent_ctx_id, -1)", "iteration")
    ]
    count, ctx, parent, iteration = conn.execute(
        f"SELECT COUNT(*), {', '.join(joined)} FROM loops WHERE run_id = ?", (run_id,)
    ).fetchone()
    return _ints(ctx, count), _ints(parent, count), _ints(iteration, count)


# `flor.store.columns` has this as well, but imports pandas, which cannot be imported at
# the interpreter's exit, where a run's end summarizes its curves (`store_curves`).
def _ints(text: str | None, count: int) -> Any:
    import numpy as np

    values = np.array(text.split(","), dtype=np.int64) if text else np.zeros(0, np.int64)
    if len(values) != count:
        raise StoreError(f"store returned {len(values)} of {count} integers: run `flor gc`")
    return values


def _levels(
    conn: Any, run_id: str, ctx: Any, tree: tuple[Any, Any, Any]
) -> tuple[list[Any], list[str]]:
    """Iteration indices of each value's enclosing loops, outermost first, and their names."""
    import numpy as np

    ctx_ids, parents, iterations = tree
    if not len(ctx_ids) or not (ctx >= 0).any():
        return [], []
    last = len(ctx_ids) - 1
    dense = int(ctx_ids[last]) - int(ctx_ids[0]) == last  # ids 1..n as recorded: no search

    def positions(wanted: Any) -> Any:
        found = wanted - ctx_ids[0] if dense else np.searchsorted(ctx_ids, wanted)
        return found.clip(0, last)

    position = positions(ctx)
    cursor = np.where(ctx_ids[position] == ctx, position, -1)
    chain, names = [], []
    while (cursor >= 0).any():
        alive = cursor >= 0
        chain.append(np.where(alive, iterations[cursor.clip(0)], -1))
        named = int(ctx_ids[int(cursor[alive][0])])
        names.append(
            conn.execute(
                "SELECT name FROM loops WHERE run_id = ? AND ctx_id = ?", (run_id, named)
            ).fetchone()[0]
        )
        parent = np.where(alive, parents[cursor.clip(0)], -1)
        at = positions(parent)
        cursor = np.where((parent >= 0) & (ctx_ids[at] == parent), at, -1)
    return chain[::-1], names[::-1]


def _axes(levels: list[Any], loops: list[str], count: int) -> dict[str, Any]:
    """x values: the outer loop's iteration (fractional within it when values sit deeper),
    and a running count of the innermost loop's iterations."""
    import numpy as np

    if not levels:
        return {"index": np.arange(count, dtype=np.float64)}
    outer = levels[0].astype(np.float64)
    axes = {loops[0]: outer}
    if len(levels) > 1:
        starts = np.r_[0, np.flatnonzero(np.diff(levels[0])) + 1]
        sizes = np.diff(np.r_[starts, count])
        within = np.arange(count) - np.repeat(starts, sizes)
        axes[loops[0]] = outer + within / np.repeat(sizes, sizes)
        axes[loops[-1]] = np.arange(count, dtype=np.float64)
    return axes


def _downsample(y: Any, max_points: int) -> Any:
    """Indices keeping the min and max of each of max_points/2 buckets, in order; None when
    the curve is small enough to send whole."""
    import numpy as np

    if len(y) <= max_points:
        return None
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, len(y), buckets + 1).astype(np.int64)
    starts = edges[:-1]
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    picked = []
    for bucket, start in enumerate(starts.tolist()):
        part = y[start : edges[bucket + 1]]
        low = start + int(np.argmax(part == lows[bucket]))
        high = start + int(np.argmax(part == highs[bucket]))
        picked.extend(sorted((low, high)))
    return np.asarray(picked, dtype=np.int64)


# -- stored curves: a long curve is summarized once, when its run ends --------------------

SUMMARY_AT = 20_000  # recorded values of one name from which a run's end stores its curve
SUMMARY_POINTS = 8_000  # points a summary keeps: the min and max of 4,000 buckets


def _long_names(conn: Any, run_id: str) -> list[str]:
    """Names with at least SUMMARY_AT recorded values in the run (each count stops there)."""
    found = []
    for name in _distinct(conn, "name", "run_id = ?", (run_id,)):
        count = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM logs WHERE run_id = ? AND name = ? "
            "AND writer = '' LIMIT ?) AS first",
            (run_id, name, SUMMARY_AT),
        ).fetchone()[0]
        if count >= SUMMARY_AT:
            found.append(name)
    return found


def store_curves(writer: Any, run_id: str) -> None:
    """Summarize each long curve of a run that has just ended (`series` at SUMMARY_POINTS)
    into `curves`, so its first view reads a few thousand points instead of every value.
    A run's recorded values never change once it has ended (replays write other writers,
    which a curve with recorded values ignores), so a summary never goes stale. Best effort
    at exit: without a summary a curve is read in full, as before."""
    from flor.store.backend import open_backend

    dialect = writer.dialect
    try:
        conn = open_backend(writer.target).reader()
        try:
            rows = [
                (run_id, name, found.total + found.skipped, json.dumps(asdict(found)))
                for name in _long_names(conn, run_id)
                for found in [_recorded_curve(conn, dialect, run_id, name)]
            ]
        finally:
            conn.close()
        if rows:
            upsert = dialect.upsert("curves", ("run_id", "name", "total", "body"), replace=True)
            writer.transaction(lambda c: c.executemany(upsert, rows))
    except Exception as exc:  # noqa: BLE001 - at a run's end: one line, never a failure
        print(
            f"flor: warning: the curves of run {run_id} were not summarized ({exc}); "
            "flor ui reads them in full",
            file=sys.stderr,
        )


def _recorded_curve(conn: Any, dialect: Dialect, run_id: str, name: str) -> Series:
    """`series(..., SUMMARY_POINTS, stored=False)` of a name with recorded values."""
    ctx, numeric = _curve_values(conn, dialect, run_id, name, recorded=True)
    tree = _loop_tree(conn, run_id, dialect)
    return _curve(conn, run_id, name, ctx, numeric, tree, SUMMARY_POINTS, False)


def _stored_curve(conn: Any, run_id: str, name: str, max_points: int) -> Series | None:
    """The stored summary of a curve, downsampled again to `max_points` (the min and max of
    whole summary buckets, so still the true extremes), if it has enough points. Plain
    Python over a few thousand points: a first view need not wait for numpy to import."""
    row = conn.execute(
        "SELECT body FROM curves WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    if row is None:
        return None
    found = Series(**json.loads(row[0]))
    if found.downsampled and max_points > SUMMARY_POINTS:
        return None  # asks for more detail than the summary holds: read every value
    if len(found.y) > max_points:
        picked = _extremes(found.y, max(1, max_points // 2))
        found.y = [found.y[i] for i in picked]
        found.x = {axis: [xs[i] for i in picked] for axis, xs in found.x.items()}
        found.downsampled = f"min/max of {len(picked) // 2} buckets over {found.total} values"
    return found


def _extremes(y: list[float], buckets: int) -> list[int]:
    """`_downsample`'s indices for a list: the first min and max of each bucket, in order."""
    picked: list[int] = []
    for bucket in range(buckets):
        start, end = len(y) * bucket // buckets, len(y) * (bucket + 1) // buckets
        part = y[start:end]
        low = start + part.index(min(part))
        high = start + part.index(max(part))
        picked += (low, high) if low <= high else (high, low)
    return picked
