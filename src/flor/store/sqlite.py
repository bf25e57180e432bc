"""The embedded store: one SQLite file in WAL mode (the default backend).

Connections, the schema migration and its version check are in `flor.store.schema`; this
module is the `Backend` over them: short IMMEDIATE write transactions, read-only
connections, and user queries behind an authorizer that allows reads only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from flor.errors import QueryError, StoreError
from flor.store.backend import Connection, QueryResult, Target, retry_while

T = TypeVar("T")
ROWS_PER_INSERT = 256
_VARIABLES = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER

_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}


def _locked(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def begin_immediate(conn: sqlite3.Connection, where: object) -> None:
    """Take the write lock, waiting (the one retry policy) while other writers hold it."""

    def give_up() -> StoreError:
        return StoreError(f"store {where} stayed locked for too long: another process holds it")

    try:
        retry_while(_locked, lambda: conn.execute("BEGIN IMMEDIATE"), give_up)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot write to the store {where} ({exc})") from exc


class SQLiteDialect:
    same = "IS"

    def upsert(self, table: str, columns: Sequence[str], *, replace: bool) -> str:
        verb = "REPLACE" if replace else "IGNORE"
        marks = ", ".join("?" for _ in columns)
        return f"INSERT OR {verb} INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    def concat(self, expression: str, separator: str = ",", order: str | None = None) -> str:
        return f"group_concat({expression}, {_literal(separator)})"

    def latest(self, table: str, group: str, by: str, columns: str) -> str:
        # SQLite takes the bare columns from the row where MAX found its value
        return f"SELECT {columns}, MAX({by}) FROM {table} GROUP BY {group}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


DIALECT = SQLiteDialect()


class SQLiteWriter:
    """Short IMMEDIATE transactions on one SQLite connection."""

    dialect = DIALECT

    def __init__(self, target: Target) -> None:
        from flor.store.schema import connect

        self.target = target
        self.conn = connect(_path(target))

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction; commit, or roll back on error (an
        interrupt landing just after BEGIN too, or the connection's next write fails)."""
        try:
            begin_immediate(self.conn, self.target)
            result = work(self.conn)
            self.conn.execute("COMMIT")
            return result
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def insert_rows(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        keep_existing: bool = False,
    ) -> None:
        """`ROWS_PER_INSERT` rows per INSERT statement where a batch has that many, rather
        than one row per step (executemany): less CPU per row in the large batches a busy
        loop flushes (`benchmarks/flush_bench.py --statements`). One statement text of each
        size, so both stay prepared in the connection's cache."""
        verb = "INSERT OR IGNORE" if keep_existing else "INSERT"
        head = f"{verb} INTO {table} ({', '.join(columns)}) VALUES "
        row = "(" + ", ".join("?" for _ in columns) + ")"
        per = max(1, min(ROWS_PER_INSERT, self.conn.getlimit(_VARIABLES) // len(columns)))
        whole = len(rows) - len(rows) % per
        if whole:
            statement = head + ", ".join([row] * per)
            for start in range(0, whole, per):
                conn.execute(statement, tuple(chain.from_iterable(rows[start : start + per])))
        if whole < len(rows):
            conn.executemany(head + row, rows[whole:])

    def close(self) -> None:
        self.conn.close()


def _path(target: Target) -> Path:
    assert target.path is not None, "a SQLite target names a file"
    return target.path


class SQLiteBackend:
    parallel_reads = 2  # SQLite computes one run's joined text while Python parses another's
    dialect = DIALECT

    def __init__(self, target: Target) -> None:
        self.target = target

    def reader(self) -> sqlite3.Connection:
        from flor.store.schema import connect

        return connect(_path(self.target), readonly=True)

    def writer(self) -> SQLiteWriter:
        return SQLiteWriter(self.target)

    def exists(self) -> bool:
        return _path(self.target).exists()

    def version(self) -> int:
        """The schema version of the file (0 when missing or unreadable)."""
        from flor.store.schema import readonly_uri, schema_version

        if not self.exists():
            return 0
        probe = sqlite3.connect(readonly_uri(_path(self.target)), uri=True)
        try:
            return schema_version(probe)
        except sqlite3.DatabaseError:
            return 0  # connect() names the problem when it matters
        finally:
            probe.close()

    def migrate(self) -> tuple[int, int]:
        from flor.store.schema import SCHEMA_VERSION, connect

        before = self.version()
        connect(_path(self.target)).close()
        return before, SCHEMA_VERSION

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        conn = self.reader()

        def only_reads(action: int, *_: Any) -> int:
            return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

        conn.set_authorizer(only_reads)
        try:
            cursor = conn.execute(sql, tuple(params))
            if cursor.description is None:
                raise QueryError(
                    "flor query only reads: use SELECT (or WITH ... SELECT) statements"
                )
            return QueryResult([d[0] for d in cursor.description], cursor.fetchall())
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
