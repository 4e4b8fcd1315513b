"""The small interface every store function talks to, and its two drivers.

SQL is written once, with `?` placeholders and the SQL both engines share
(ON CONFLICT upserts, RETURNING, row-value comparisons, partial indexes); the
PostgreSQL driver turns `?` into psycopg's `%s`. Rows come back as dicts.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence
from urllib.parse import urlsplit

Row = dict[str, Any]


class DatabaseUrlError(ValueError):
    pass


class Connection(Protocol):
    dialect: str                        # "sqlite" | "postgresql"
    # A value that fails to store (a string PostgreSQL cannot hold, ...): the message is at fault, not the database.
    data_errors: tuple[type[BaseException], ...]

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...
    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...
    def run(self, sql: str, args: Sequence[Any] = ()) -> int: ...
    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    def many_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        """One statement with RETURNING, once per row (pipelined on PostgreSQL); -> every returned row."""
        ...
    def transaction(self, write: bool) -> contextlib.AbstractContextManager[None]: ...
    def savepoint(self) -> contextlib.AbstractContextManager[None]: ...
    def broken(self) -> bool: ...
    def close(self) -> None: ...


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row)}


class SqliteConnection:
    dialect = "sqlite"
    data_errors: tuple[type[BaseException], ...] = (
        sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, UnicodeError, OverflowError, ValueError,
        TypeError, RecursionError)

    def __init__(self, path: str):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        # check_same_thread=False: Database closes every thread's connection from the loop thread at the end.
        self.raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.raw.row_factory = _dict_row
        self.raw.execute("PRAGMA journal_mode=WAL")
        # A message is acknowledged to the broker only after its COMMIT; FULL makes that COMMIT durable.
        self.raw.execute("PRAGMA synchronous=FULL")
        self.raw.execute("PRAGMA foreign_keys=ON")
        self._savepoints = 0

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(sql, tuple(args)).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        return self.raw.execute(sql, tuple(args)).fetchone()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.raw.execute(sql, tuple(args)).rowcount

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def many_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            out += self.raw.execute(sql, tuple(row)).fetchall()
        return out

    @contextlib.contextmanager
    def transaction(self, write: bool) -> Iterator[None]:
        self.raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        self.raw.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.raw.execute(f"ROLLBACK TO {name}")
            self.raw.execute(f"RELEASE {name}")
            raise
        self.raw.execute(f"RELEASE {name}")

    def broken(self) -> bool:
        return False

    def close(self) -> None:
        self.raw.close()


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    dialect = "postgresql"

    def __init__(self, url: str):
        import psycopg
        from psycopg.rows import dict_row
        self._psycopg = psycopg
        self.data_errors = (psycopg.DataError, psycopg.IntegrityError, UnicodeError, OverflowError, ValueError,
                            TypeError, RecursionError, psycopg.errors.ProgramLimitExceeded)
        # autocommit: transactions are explicit (conn.transaction()), as with SQLite.
        self.raw = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(_pg_sql(sql), tuple(args)).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        return self.raw.execute(_pg_sql(sql), tuple(args)).fetchone()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.raw.execute(_pg_sql(sql), tuple(args)).rowcount

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(_pg_sql(sql), [tuple(r) for r in rows])

    def many_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        out: list[Row] = []
        with self.raw.cursor() as cursor:
            cursor.executemany(_pg_sql(sql), [tuple(r) for r in rows], returning=True)
            for _ in cursor.results():
                out += cursor.fetchall()
        return out

    @contextlib.contextmanager
    def transaction(self, write: bool) -> Iterator[None]:
        with self.raw.transaction():
            yield

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.raw.transaction():      # nested inside a transaction: a SAVEPOINT
            yield

    def broken(self) -> bool:
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////absolute/path.db (as SQLAlchemy writes them)."""
    rest = url[len("sqlite:"):]
    if rest.startswith("///"):
        path = rest[3:]
    elif rest.startswith("//"):
        raise DatabaseUrlError(f"DATABASE_URL {url!r}: a SQLite URL has three slashes before a relative path "
                               "(sqlite:///cloud.db) and four before an absolute one (sqlite:////var/lib/cloud.db)")
    else:
        path = rest
    if not path:
        raise DatabaseUrlError(f"DATABASE_URL {url!r}: no file name (e.g. sqlite:///cloud.db)")
    return path


def check_url(url: str) -> str:
    """-> the dialect; raises DatabaseUrlError naming the value and what is accepted."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        sqlite_path(url)
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise DatabaseUrlError(f"DATABASE_URL {url!r}: not sqlite:///FILE or postgresql://USER@HOST/DATABASE")


def connect(url: str) -> Connection:
    if check_url(url) == "sqlite":
        return SqliteConnection(sqlite_path(url))
    return PostgresConnection(url)
