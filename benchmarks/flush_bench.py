"""Where a flush's time goes: SQLite's CPU per `loops` and `logs` row, and what the
alternatives the issue 14 runtime notes list would save (a batch as one `json_each`
statement; the logs table without its `logs_by_run` index).

Prints CPU (process_time) and wall per row, median of `--reps`; asserts nothing.
    python benchmarks/flush_bench.py [--rows 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flor.store.schema import connect
from flor.store.writer import LOG_COLUMNS, LOOP_COLUMNS

RUN, TSTAMP = "abcdef012345", "2026-12-01 19:00:00.000"


def variants(n: int) -> dict[str, tuple[Callable[[sqlite3.Connection], None], bool]]:
    """name -> (insert the batch, drop logs_by_run first)."""
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

    return {
        "loops rows, executemany (today)": (lambda c: c.executemany(loop_sql, loops), False),
        "logs rows, executemany (today)": (lambda c: c.executemany(log_sql, logs), False),
        "logs rows, one json_each statement": (logs_json, False),
        "logs rows, without logs_by_run": (lambda c: c.executemany(log_sql, logs), True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    n = args.rows
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for k, (name, (insert, no_index)) in enumerate(variants(n).items()):
                conn = connect(Path(tmp) / f"{rep}-{k}.db")
                if no_index:
                    conn.execute("DROP INDEX logs_by_run")
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


if __name__ == "__main__":
    main()
