"""Short write transactions into the store, safe with several processes recording at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flor.store.backend import Connection, Target

T = TypeVar("T")

RUN_COLUMNS = (
    "run_id",
    "projid",
    "filename",
    "tstamp",
    "status",
    "mode",
    "replay_of",
    "snapshot",
    "base_commit",
    "branch",
    "argv",
    "cwd",
    "args",
    "host",
    "pid",
    "started",
    "heartbeat",
    "threads",
)
LOOP_COLUMNS = ("run_id", "ctx_id", "parent_ctx_id", "name", "iteration", "value", "seconds")
CHECKPOINT_COLUMNS = ("run_id", "ctx_id", "iteration", "object", "digest", "bytes", "seconds")
COMMIT_COLUMNS = ("run_id", "tstamp", "snapshot")
# `writer` is `replay_id` or '' for the recorded run: part of the logs key (schema 2).
LOG_COLUMNS = (
    "run_id", "tstamp", "ctx_id", "name", "value", "type", "seq", "replay_id", "writer",
)  # fmt: skip

# Other replays' values of a name in one context (replay replaces them). `writer` is
# `replay_id` made non-null; testing it rather than `replay_id` keeps the statement inside
# `logs_by_name` (name, run_id, ctx_id, then the key's writer): one seek per replaced row,
# where the `replay_id` spelling made SQLite read every value of the name in the run.
REPLACED_VALUES = (
    "DELETE FROM logs WHERE name = ? AND run_id = ? AND ctx_id {same} ? "
    "AND writer != '' AND writer != COALESCE(?, '')"
)


class StoreWriter:
    """One connection, guarded by a lock so the flush thread and the main thread can share it.

    The database is `FLOR_STORE` when set (a PostgreSQL server), else the SQLite file at
    `path`. `work` callbacks get a connection taking SQLite-dialect SQL on both backends.
    """

    def __init__(self, path: Path | None = None, *, target: Target | None = None) -> None:
        from flor.store.backend import open_backend, resolve

        self._db = open_backend(target or resolve(path)).writer()
        self.target = self._db.target
        self.dialect = self._db.dialect
        self.path = path
        self._lock = threading.Lock()

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one short write transaction, retrying while other writers conflict."""
        with self._lock:
            result: T = self._db.transaction(work)
            return result

    def insert_run(self, run: dict[str, Any]) -> None:
        columns = ", ".join(RUN_COLUMNS)
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        values = tuple(run.get(c) for c in RUN_COLUMNS)
        self.transaction(
            lambda c: c.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", values)
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{key} = ?" for key in fields)
        self.transaction(
            lambda c: c.execute(
                f"UPDATE runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id)
            )
        )

    def write_batch(
        self,
        row_id: str,
        loops: Sequence[tuple[Any, ...]],
        logs: Sequence[tuple[Any, ...]],
        timings: Iterable[tuple[float, int]],
        heartbeat: float,
        replace_names: Sequence[str] = (),
    ) -> None:
        """Loops, logs, iteration timings and the heartbeat, atomically.

        `replace_names` (replay) first deletes earlier replayed values of those names in
        the same loop contexts, so replaying twice never duplicates values.
        """

        same = self.dialect.same

        def work(conn: Connection) -> None:
            if loops:
                # a row may carry the iteration's seconds as a 7th column (the runtime's do)
                columns = LOOP_COLUMNS[: len(loops[0])]
                self._db.insert_rows(conn, "loops", columns, loops, keep_existing=True)
            if replace_names and logs:
                conn.executemany(
                    REPLACED_VALUES.format(same=same),
                    {(row[3], row[0], row[2], row[7]) for row in logs if row[3] in replace_names},
                )
            if logs:
                self._db.insert_rows(conn, "logs", LOG_COLUMNS, logs)
            conn.executemany(
                "UPDATE loops SET seconds = ? WHERE run_id = ? AND ctx_id = ?",
                ((seconds, row_id, ctx) for seconds, ctx in timings),
            )
            conn.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (heartbeat, row_id))

        self.transaction(work)

    def insert_checkpoints(self, rows: Sequence[tuple[Any, ...]]) -> None:
        statement = self.dialect.upsert("checkpoints", CHECKPOINT_COLUMNS, replace=True)
        self.transaction(lambda c: c.executemany(statement, rows))

    def record_commit(self, run_id: str, tstamp: str, snapshot: str | None) -> None:
        """The code snapshot of a run's `tstamp` (replacing an earlier one)."""
        statement = self.dialect.upsert("commits", COMMIT_COLUMNS, replace=True)
        self.transaction(lambda c: c.execute(statement, (run_id, tstamp, snapshot)))

    def commit_snapshot(self, run_id: str, tstamp: str) -> str | None:
        """The snapshot recorded for a run's `tstamp`, if any."""
        row = self.transaction(
            lambda c: c.execute(
                "SELECT snapshot FROM commits WHERE run_id = ? AND tstamp = ?", (run_id, tstamp)
            ).fetchone()
        )
        return row[0] if row else None

    def set_commit_snapshot(self, run_id: str, tstamp: str, snapshot: str) -> None:
        """Point an existing commit row of a run's `tstamp` at another snapshot."""
        self.transaction(
            lambda c: c.execute(
                "UPDATE commits SET snapshot = ? WHERE run_id = ? AND tstamp = ?",
                (snapshot, run_id, tstamp),
            )
        )

    def loop_contexts(self, run_id: str) -> list[tuple[int | None, str, int, int]]:
        """A run's loop contexts: (parent ctx_id, loop name, iteration, ctx_id)."""
        rows = self.transaction(
            lambda c: c.execute(
                "SELECT parent_ctx_id, name, iteration, ctx_id FROM loops WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        )
        return [(p, n, int(i), int(c)) for p, n, i, c in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
