"""Which database holds the store, and the little that differs between SQLite and PostgreSQL.

`FLOR_STORE` picks the database: unset means the embedded SQLite file in the store folder;
`postgresql://user:pass@host:port/db` a shared server (psycopg 3, imported only then);
`sqlite:///path/to/flor.db` an explicit SQLite file. The store's SQL is written once, in
SQLite's dialect with `?` parameters, and `flor.store.postgres.translate` rewrites the few
constructs PostgreSQL spells differently. Passwords never leave this module unmasked: every
message that names a server goes through `mask`.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from flor.errors import StoreError, UsageError

T = TypeVar("T")
STORE_ENV = "FLOR_STORE"
POSTGRES_SCHEMES = ("postgresql", "postgres")
RETRIES = 200

_PASSWORD_IN_URL = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s@]*(?=@)")
_PASSWORD_PARAM = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)


def mask(text: str) -> str:
    """`text` with every password (in URLs and `password=` pairs) replaced by `***`."""
    text = _PASSWORD_IN_URL.sub(lambda m: m.group("head") + "***", text)
    return _PASSWORD_PARAM.sub(lambda m: m.group("head") + "***", text)


class Connection(Protocol):
    """What store code may call on a connection, on either backend."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Any], /) -> Any: ...


@dataclass(frozen=True)
class Target:
    """One store database: a SQLite file or a PostgreSQL URL (kept secret in `__str__`)."""

    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        return mask(self.url) if self.url else str(self.path)

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"


def parse(url: str) -> Target:
    """A target from a store URL; anything but PostgreSQL or SQLite is refused by name."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.split("+", 1)[0] in POSTGRES_SCHEMES:
        if "+" in scheme:  # SQLAlchemy-style postgresql+psycopg://: libpq wants the bare scheme
            url = "postgresql" + url[len(scheme) :]
        return Target("postgresql", url=url)
    if scheme == "sqlite":
        rest = url.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise UsageError(
                f"store URL {mask(url)} names no file: use sqlite:///absolute/path/flor.db"
            )
        return Target("sqlite", path=Path(rest[1:] if rest.startswith("//") else rest))
    shown = mask(url) if scheme else repr(mask(url))
    raise UsageError(
        f"unsupported store URL {shown}: {STORE_ENV} takes "
        "postgresql://user:password@host:port/database or sqlite:///path/to/flor.db"
    )


def resolve(path: Path | None = None) -> Target:
    """The store to use: `FLOR_STORE` if set, else the SQLite file at `path` (or the default)."""
    url = os.environ.get(STORE_ENV, "").strip()
    if url:
        return parse(url)
    if path is None:
        from flor.store.location import db_path, home_dir

        path = db_path(home_dir())
    return Target("sqlite", path=path)


# -- SQLite ----------------------------------------------------------------------------------


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.01 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))


class SQLiteWriter:
    """Short IMMEDIATE transactions on one SQLite connection, retried with backoff while locked."""

    def __init__(self, target: Target) -> None:
        from flor.store.schema import connect

        assert target.path is not None
        self.target = target
        self.conn = connect(target.path)

    def transaction(self, work: Callable[[Any], T]) -> T:
        for attempt in range(RETRIES):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise StoreError(f"cannot write to the store {self.target} ({exc})") from exc
                backoff(attempt)
                continue
            try:
                result = work(self.conn)
                self.conn.execute("COMMIT")
                return result
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        raise StoreError(
            f"store {self.target} stayed locked for too long: another process holds it"
        )

    def insert_rows(
        self, conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def close(self) -> None:
        self.conn.close()


def errors() -> tuple[type[Exception], ...]:
    """The driver exceptions a store operation may raise (PostgreSQL's only once loaded)."""
    import sys

    found: list[type[Exception]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        found.append(psycopg.Error)
    return tuple(found)


def open_writer(path: Path | None = None, target: Target | None = None) -> Any:
    """A writer on the store: `.transaction(work)`, `.insert_rows(...)`, `.close()`."""
    target = target or resolve(path)
    if target.is_postgres:
        from flor.store.postgres import PostgresStore

        return PostgresStore(target).writer()
    return SQLiteWriter(target)


def open_target(target: Target) -> Any:
    """A read-only connection (one consistent snapshot on PostgreSQL), SQLite-dialect SQL."""
    if target.is_postgres:
        from flor.store.postgres import PostgresStore

        return PostgresStore(target).reader()
    from flor.store.schema import connect

    assert target.path is not None
    return connect(target.path, readonly=True)


def target_exists(target: Target) -> bool:
    """Whether the store holds a schema yet (a SQLite file exists, a server has the tables)."""
    if not target.is_postgres:
        assert target.path is not None
        return target.path.exists()
    from flor.store.postgres import PostgresStore

    return PostgresStore(target).exists()
