"""The store on a PostgreSQL server, through psycopg 3 (imported only when a URL names one).

Same tables and meaning as the SQLite store; columns take PostgreSQL's equivalent types
(`BIGINT`, `DOUBLE PRECISION`, `TEXT COLLATE "C"` so text sorts as in SQLite). Writers use
short READ COMMITTED transactions retried on serialization failures and deadlocks;
readers use one REPEATABLE READ, READ ONLY transaction, so a dataframe never sees half of a
concurrent flush. Connection failures become one masked line after at most
`CONNECT_TIMEOUT_S`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Loader

from flor.errors import QueryError, StoreError
from flor.store.backend import Connection, QueryResult, Target, mask, retry_while

T = TypeVar("T")
CONNECT_TIMEOUT_S = 4
_LOCK_KEY = 0x666C6F72  # "flor": serializes concurrent schema migrations
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?", re.DOTALL)


def translate(sql: str) -> str:
    """`?` parameters (outside literals and comments) as psycopg's `$n`. Nothing else is
    rewritten: what PostgreSQL spells differently comes from `PostgresDialect`."""
    counter = iter(range(1, 1 << 30))

    def number(match: re.Match[str]) -> str:
        token = match.group(0)
        return f"${next(counter)}" if token == "?" else token

    return _TOKENS.sub(number, sql).rstrip().rstrip(";")


class _NumericLoader(Loader):
    """`numeric` (SUM and AVG of integers) as int or float, as SQLite returns them."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def connect(target: Target, *, readonly: bool = False) -> psycopg.Connection[Any]:
    """A connection, or one masked line saying why there is none (within the timeout)."""
    assert target.url is not None
    try:
        conn = psycopg.connect(
            target.url,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="flor",
            cursor_factory=psycopg.RawCursor,
            autocommit=not readonly,
        )
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to the PostgreSQL store {target}: {_reason(exc)}: check "
            "FLOR_STORE (host, port, user, password, database) and that the server is up"
        ) from None
    conn.adapters.register_loader("numeric", _NumericLoader)
    if readonly:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
    return conn


def _reason(exc: BaseException) -> str:
    """The driver's message on one line, without the password."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^connection failed:\s*", "", text)
    text = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed:\s*', "", text)
    return mask(text.replace("FATAL:", "").strip())


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(found[0]) if found else 0


def migrate(conn: psycopg.Connection[Any], target: Target) -> tuple[int, int]:
    """Bring the schema up to date under an advisory lock; (version before, after)."""
    from flor.store.schema import SCHEMA_VERSION, check_version, statements

    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock($1)", [_LOCK_KEY])
            found = schema_version(conn)
            check_version(str(target), found)
            for step in range(found, SCHEMA_VERSION):
                for statement in statements(step, "postgresql"):
                    conn.execute(statement)
            if found != SCHEMA_VERSION:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', $1) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [str(SCHEMA_VERSION)],
                )
        return found, SCHEMA_VERSION
    except psycopg.Error as exc:
        raise StoreError(f"cannot migrate the store {target}: {_reason(exc)}") from exc


class PgConnection:
    """A psycopg connection that takes the store's SQL with `?` parameters (see `translate`)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Any = (), /) -> Any:
        return self.raw.execute(translate(sql), list(params))

    def executemany(self, sql: str, rows: Iterable[Any], /) -> Any:
        cursor = self.raw.cursor()
        batch = [list(row) for row in rows]
        if batch:
            cursor.executemany(translate(sql), batch)
        return cursor

    def close(self) -> None:
        self.raw.close()


class PostgresBackend:
    parallel_reads = 1  # one REPEATABLE READ snapshot: a dataframe never sees half a flush

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def dialect(self) -> PostgresDialect:
        return PgWriter.dialect

    def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema; returns (version before, version after)."""
        conn = connect(self.target)
        try:
            return migrate(conn, self.target)
        finally:
            conn.close()

    def version(self) -> int:
        conn = connect(self.target, readonly=True)
        try:
            return schema_version(conn)
        finally:
            conn.close()

    def exists(self) -> bool:
        return self.version() > 0

    def writer(self) -> PgWriter:
        return PgWriter(self.target)

    def reader(self) -> PgConnection:
        """A read-only snapshot of the store; refuses a missing or newer schema."""
        from flor.store.schema import check_version

        conn = connect(self.target, readonly=True)
        try:
            version = schema_version(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot read the store {self.target}: {_reason(exc)}") from exc
        if version == 0:
            conn.close()
            raise StoreError(
                f"no flor store at {self.target}: record a run first or run `flor store migrate`"
            )
        try:
            check_version(str(self.target), version)
        except StoreError:
            conn.close()
            raise
        return PgConnection(conn)

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        """One statement in a READ ONLY transaction, as a prepared statement (so exactly one).

        `?` parameters are translated only when parameters are given; the text of a user's
        own query reaches the server unchanged.
        """
        conn = self.reader()
        try:
            text = translate(sql) if params else sql
            cursor = conn.raw.execute(text, list(params), prepare=True)
            if cursor.description is None:
                raise QueryError(
                    "flor query only reads: use SELECT (or WITH ... SELECT) statements"
                )
            return QueryResult([d[0] for d in cursor.description], cursor.fetchall())
        except (pg_errors.ReadOnlySqlTransaction, pg_errors.InsufficientPrivilege) as exc:
            raise QueryError(
                "flor query only reads: use SELECT (or WITH ... SELECT) statements"
            ) from exc
        except psycopg.Error as exc:
            raise QueryError(f"invalid SQL: {_reason(exc)}: check the statement") from exc
        finally:
            conn.close()


class PostgresDialect:
    same = "IS NOT DISTINCT FROM"

    def upsert(self, table: str, columns: Sequence[str], *, replace: bool) -> str:
        from flor.store.schema import PRIMARY_KEYS

        keys = PRIMARY_KEYS[table]
        others = [c for c in columns if c not in keys]
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        if not replace or not others:
            return f"{insert} ON CONFLICT DO NOTHING"
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
        return f"{insert} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"

    def concat(self, expression: str, separator: str = ",", order: str | None = None) -> str:
        within = f" ORDER BY {order}" if order else ""
        quoted = "'" + separator.replace("'", "''") + "'"
        return f"string_agg(CAST({expression} AS TEXT), {quoted}{within})"

    def latest(self, table: str, group: str, by: str, columns: str) -> str:
        return (
            f"SELECT DISTINCT ON ({group}) {columns}, {by} FROM {table} ORDER BY {group}, {by} DESC"
        )


class _Reconnected(Exception):
    """The server dropped the writer's connection and it reconnected: try again."""


class PgWriter:
    """Short write transactions with retries; reconnects once if the server dropped us."""

    dialect = PostgresDialect()

    def __init__(self, target: Target) -> None:
        self.target = target
        raw = connect(target)
        try:
            migrate(raw, target)
        except BaseException:
            raw.close()
            raise
        self.conn = PgConnection(raw)

    def transaction(self, work: Callable[[Connection], T]) -> T:
        reconnected = False

        def attempt() -> T:
            nonlocal reconnected
            try:
                with self.conn.raw.transaction():
                    return work(self.conn)
            except _RETRYABLE:
                raise
            except psycopg.OperationalError as exc:
                if reconnected or not self.conn.raw.closed:
                    raise StoreError(
                        f"cannot write to the store {self.target}: {_reason(exc)}"
                    ) from exc
                reconnected = True
                self.conn = PgConnection(connect(self.target))
                raise _Reconnected from exc

        def give_up() -> StoreError:
            return StoreError(f"store {self.target} kept conflicting with other writers: try again")

        return retry_while(
            lambda exc: isinstance(exc, (*_RETRYABLE, _Reconnected)), attempt, give_up
        )

    def insert_rows(
        self,
        conn: Any,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        keep_existing: bool = False,
    ) -> None:
        """Bulk rows through COPY: an order of magnitude faster than INSERTs (COPY cannot
        skip stored keys: those rows go through INSERT ... ON CONFLICT DO NOTHING)."""
        if keep_existing:
            conn.executemany(self.dialect.upsert(table, columns, replace=False), rows)
            return
        with (
            conn.raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self.conn.close()
