"""Which database holds the store, and the little that differs between SQLite and PostgreSQL.

`FLOR_STORE` picks the database: unset means the embedded SQLite file in the store folder;
`postgresql://user:pass@host:port/db` a shared server (psycopg 3, imported only then);
`sqlite:///path/to/flor.db` an explicit SQLite file. `open_backend` gives the `Backend`
of either (`flor.store.sqlite`, `flor.store.postgres`). Passwords never leave this module
unmasked: every message that names a server goes through `mask`.
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

from flor.errors import UsageError

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


def describe(exc: BaseException) -> str:
    """An error as one line for a warning: its type and first line, passwords masked."""
    lines = str(exc).strip().splitlines()
    return mask(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)


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
        from flor.paths import db_path, home_dir

        path = db_path(home_dir())
    return Target("sqlite", path=path)


# -- what every backend offers --------------------------------------------------------------


class Dialect(Protocol):
    """The statements a backend spells its own way, written for it by the backend."""

    same: str  # `a {same} ?` holds when both are NULL or equal

    def upsert(self, table: str, columns: Sequence[str], *, replace: bool) -> str:
        """An INSERT of one row of `columns` (`?` parameters) that, when a row with the same
        primary key exists, replaces it (`replace`) or leaves it (not `replace`)."""
        ...

    def concat(self, expression: str, separator: str = ",", order: str | None = None) -> str:
        """An aggregate joining `expression` as text with `separator` over a group's rows in
        `order` (SQLite visits a group in primary-key order, so it is told nothing)."""
        ...

    def latest(self, table: str, group: str, by: str, columns: str) -> str:
        """A SELECT of `columns` then `by` from the row of greatest `by` in each `group`."""
        ...


class Writer(Protocol):
    """Short write transactions: `work` gets a connection and runs inside one."""

    target: Target

    @property
    def dialect(self) -> Dialect: ...

    def transaction(self, work: Callable[[Connection], T]) -> T: ...

    def insert_rows(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        keep_existing: bool = False,
    ) -> None:
        """Many rows at once, the backend's fastest way; with `keep_existing`, a row whose
        key is already stored is skipped (else it is an error)."""
        ...

    def close(self) -> None: ...


class ReadConnection(Connection, Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class QueryResult:
    """A user query's answer: column names and rows, for the reader to shape."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Backend(Protocol):
    """One store database. `open_backend` picks the implementation: `flor.store.sqlite`
    or `flor.store.postgres`; nothing else looks at which one it is."""

    target: Target
    parallel_reads: int  # connections a dataframe reads runs with at once

    @property
    def dialect(self) -> Dialect:
        """How this database spells what differs (for readers as for writers)."""
        ...

    def reader(self) -> ReadConnection:
        """A read-only connection: one consistent snapshot; refuses a missing or newer schema."""
        ...

    def writer(self) -> Writer:
        """A writer on a store created or migrated to the current schema."""
        ...

    def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema; (version before, version after)."""
        ...

    def version(self) -> int:
        """The schema version found (0 for no store yet)."""
        ...

    def exists(self) -> bool:
        """Whether the store holds a schema yet (a SQLite file exists, a server has tables)."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        """One user statement, refused unless it only reads."""
        ...


def open_backend(target: Target | None = None) -> Backend:
    """The backend of `target` (default: the store `resolve` picks): the one place that
    chooses between SQLite and PostgreSQL."""
    target = target or resolve()
    if target.is_postgres:
        from flor.store.postgres import PostgresBackend

        return PostgresBackend(target)
    from flor.store.sqlite import SQLiteBackend

    return SQLiteBackend(target)


# -- waiting for other writers ---------------------------------------------------------------


def backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.01 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))


def retry_while(
    retryable: Callable[[BaseException], bool],
    action: Callable[[], T],
    give_up: Callable[[], Exception],
) -> T:
    """The one lock-retry policy: run `action` until it stops failing with a `retryable`
    error, backing off exponentially with jitter, at most `RETRIES` times."""
    for attempt in range(RETRIES):
        try:
            return action()
        except Exception as exc:
            if not retryable(exc):
                raise
        backoff(attempt)
    raise give_up()


def errors() -> tuple[type[Exception], ...]:
    """The driver exceptions a store operation may raise (PostgreSQL's only once loaded)."""
    import sys

    found: list[type[Exception]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        found.append(psycopg.Error)
    return tuple(found)
