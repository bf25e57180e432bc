"""Where a flush's time goes: SQLite's CPU per `loops` and `logs` row, and what the
alternatives the issue 14 runtime notes list would save (a batch as one `json_each`
statement; the logs table without its `logs_by_name` index, or with schema 5's
`logs_by_run` in its place; a typed REAL value column).

Prints CPU (process_time) and wall per row, median of `--reps`; asserts nothing.
`--typed` also weighs a REAL copy of numeric values beside their text (issue 14's idea for
the dataframe): what it adds to a write, and what reading a million of them back costs
against today's joined text, with how many come back exactly.
`--statements` compares the store's writes (`SQLiteWriter.insert_rows`: many rows per
INSERT statement) with one row per executemany step, for the batch sizes a flush sees.
    python benchmarks/flush_bench.py [--rows 100000] [--reps 3] [--typed | --statements]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flor.store.backend import Target
from flor.store.columns import SEPARATOR, parse
from flor.store.schema import connect
from flor.store.sqlite import SQLiteWriter
from flor.store.writer import LOG_COLUMNS, LOOP_COLUMNS

RUN, TSTAMP = "abcdef012345", "2026-12-01 19:00:00.000"


OLD_INDEX = ("DROP INDEX logs_by_name", "CREATE INDEX logs_by_run ON logs (run_id, ctx_id)")


def variants(
    n: int,
) -> dict[str, tuple[Callable[[sqlite3.Connection], None], tuple[str, ...]]]:
    """name -> (insert the batch, statements that change the schema first)."""
    logs = [(RUN, TSTAMP, i + 1, "loss", repr(i * 0.5), "float", i + 2, None, "") for i in range(n)]
    loops = [(RUN, i + 1, None, "step", i, None, 1e-6) for i in range(n)]
    log_sql = f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * 9)})"
    loop_sql = (
        f"INSERT OR IGNORE INTO loops ({', '.join(LOOP_COLUMNS)}) VALUES ({', '.join('?' * 7)})"
    )

    def logs_json(conn: sqlite3.Connection) -> None:
        body = json.dumps([[r[2], r[4], r[6]] for r in logs])
        conn.execute(
            f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) SELECT ?, ?, json_extract(value, "
            "'$[0]'), 'loss', json_extract(value, '$[1]'), 'float', json_extract(value, "
            "'$[2]'), NULL, '' FROM json_each(?)",
            (RUN, TSTAMP, body),
        )

    # four names per step, as a training loop logs them: each name's own place in the index
    names = ("loss", "acc", "lr", "grad_norm")
    mixed = [(RUN, TSTAMP, i // 4 + 1, names[i % 4], repr(i * 0.5), "float", i + 2, None, "")
             for i in range(n)]  # fmt: skip

    def write_logs(conn: sqlite3.Connection) -> None:
        conn.executemany(log_sql, logs)

    def write_mixed(conn: sqlite3.Connection) -> None:
        conn.executemany(log_sql, mixed)

    return {
        "loops rows, executemany (today)": (lambda c: c.executemany(loop_sql, loops), ()),
        "logs rows, executemany (today)": (write_logs, ()),
        "logs rows, one json_each statement": (logs_json, ()),
        "logs rows, without logs_by_name": (write_logs, OLD_INDEX[:1]),
        "logs rows, schema 5's logs_by_run instead": (write_logs, OLD_INDEX),
        "logs rows of 4 names (today)": (write_mixed, ()),
        "logs rows of 4 names, schema 5's logs_by_run instead": (write_mixed, OLD_INDEX),
    }


def statements(n: int, reps: int) -> None:
    """CPU per row of the inserts alone (not the commit), by batch size and way of writing."""
    print("| batch rows | table | executemany µs/row | insert_rows µs/row |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (50, 500, 5000, 50000):
            for table, columns in (("loops", LOOP_COLUMNS), ("logs", LOG_COLUMNS)):
                cpu: dict[bool, list[float]] = {False: [], True: []}
                for rep in range(reps):
                    for store_way in (False, True):
                        path = Path(tmp) / f"{batch}-{table}-{rep}-{store_way}.db"
                        writer = SQLiteWriter(Target("sqlite", path=path))
                        conn, spent, seq = writer.conn, 0.0, 0
                        single = writer.dialect.upsert(table, columns, replace=False)
                        for _ in range(max(1, n // batch)):
                            if table == "loops":
                                rows = [(RUN, seq + i, None, "step", i, None, 1e-6)
                                        for i in range(batch)]  # fmt: skip
                            else:
                                rows = [(RUN, TSTAMP, i, "loss", repr(i / 2), "float", seq + i,
                                         None, "") for i in range(batch)]  # fmt: skip
                            seq += batch
                            conn.execute("BEGIN IMMEDIATE")
                            c = time.process_time()
                            if store_way:
                                writer.insert_rows(conn, table, columns, rows, keep_existing=True)
                            else:
                                conn.executemany(single, rows)
                            spent += time.process_time() - c
                            conn.execute("COMMIT")
                        cpu[store_way].append(spent / (max(1, n // batch) * batch) * 1e6)
                        writer.close()
                print(
                    f"| {batch:,} | {table} | {statistics.median(cpu[False]):.2f} | "
                    f"{statistics.median(cpu[True]):.2f} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--typed", action="store_true", help="weigh a REAL value column")
    parser.add_argument("--statements", action="store_true", help="rows per INSERT statement")
    args = parser.parse_args()
    if args.statements:
        statements(args.rows, args.reps)
        return
    if args.typed:
        typed_column(args.rows, args.reps)
        return
    n = args.rows
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for k, (name, (insert, schema)) in enumerate(variants(n).items()):
                conn = connect(Path(tmp) / f"{rep}-{k}.db")
                for statement in schema:
                    conn.execute(statement)
                c, w = time.process_time(), time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                insert(conn)
                conn.execute("COMMIT")
                cpu.setdefault(name, []).append((time.process_time() - c) / n * 1e6)
                wall.setdefault(name, []).append((time.perf_counter() - w) / n * 1e6)
                conn.close()
    print(f"| {n:,} rows in one transaction (median of {args.reps}) | CPU µs/row | wall µs/row |")
    print("|---|---|---|")
    for name in cpu:
        print(
            f"| {name} | {statistics.median(cpu[name]):.2f} | {statistics.median(wall[name]):.2f} |"
        )


def typed_column(n: int, reps: int) -> None:
    """A `number REAL` column beside `value`: its write cost, and its read against the text."""
    values = [1.0 / (i + 1) for i in range(n)]
    rows = [(RUN, TSTAMP, i + 1, "loss", repr(v), "float", i + 2, None, "") for i, v in
            enumerate(values)]  # fmt: skip
    log_sql = f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * 9)})"
    typed_sql = log_sql.replace(") VALUES", ", number) VALUES").replace("?)", "?, ?)")
    typed_rows = [(*row, v) for row, v in zip(rows, values, strict=True)]
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for typed in (False, True):
                conn = connect(Path(tmp) / f"typed-{rep}-{typed}.db")
                if typed:
                    conn.execute("ALTER TABLE logs ADD COLUMN number REAL")
                c = time.process_time()
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(typed_sql if typed else log_sql, typed_rows if typed else rows)
                conn.execute("COMMIT")
                write = (time.process_time() - c) / n * 1e6
                cpu.setdefault(f"write a logs row{' + REAL' if typed else ''} (µs/row)", []).append(
                    write
                )
                if typed:
                    c = time.process_time()
                    cursor = conn.execute("SELECT number FROM logs ORDER BY seq")
                    [v for (v,) in cursor]
                    seconds = (time.process_time() - c) * 1e6 / n
                    cpu.setdefault("read REAL rows (s per 10^6 values)", []).append(seconds)
                c = time.process_time()
                joined = conn.execute(
                    f"SELECT group_concat(value, '{SEPARATOR}') FROM logs"
                ).fetchone()[0]
                parse(joined, n, "float")
                cpu.setdefault("read joined text + parse (s per 10^6 values)", []).append(
                    (time.process_time() - c) * 1e6 / n
                )
                conn.close()
    for name, found in cpu.items():
        print(f"| {name} | {statistics.median(found):.2f} |")
    rng = random.Random(14)
    doubles = [struct.unpack("d", rng.randbytes(8))[0] for _ in range(100_000)]
    doubles = [d for d in doubles if math.isfinite(d)]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (number REAL)")
    conn.executemany("INSERT INTO t VALUES (?)", [(d,) for d in doubles])
    texts = conn.execute("SELECT group_concat(number) FROM t").fetchone()[0].split(",")
    changed = sum(float(t) != d for t, d in zip(texts, doubles, strict=True))
    print(
        f"SQLite {sqlite3.sqlite_version}: group_concat of REAL changes {changed:,} of "
        f"{len(doubles):,} random doubles (text to REAL to text is not exact in bulk)"
    )


if __name__ == "__main__":
    main()
