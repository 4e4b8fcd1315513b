"""Runs store functions on worker threads: one writer, a few readers.

One writer thread per process keeps SQLite's single-writer rule without lock
waits; PostgreSQL gets a few (`writers`, default 4), so the ingest stores
different sites' messages in parallel, each in its own short transaction; readers serve
the API next to it (SQLite in WAL mode lets them read while the writer
writes). Each thread keeps its own connection and reconnects after a broken
one (PostgreSQL restarted), so a database outage is an error per call, not a
dead service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from cloud.db.connection import Connection, check_url, connect
from cloud.db.migrations import migrate

log = logging.getLogger(__name__)
T = TypeVar("T")


class Database:
    def __init__(self, url: str, *, readers: int = 2, writers: int = 4):
        self.url = url
        self.dialect = check_url(url)
        self.writers = 1 if self.dialect == "sqlite" else max(1, writers)
        self._writer = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="cloud-db-write")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="cloud-db-read")
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self.data_errors: tuple[type[BaseException], ...] = ()

    async def open(self) -> None:
        """Connects and brings the schema up to date (safe with several instances starting at once)."""
        try:
            await self.write(migrate)
            self.data_errors = await self.read(lambda conn: conn.data_errors)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except Exception as exc:  # closing a dead connection: nothing left to do
                    log.debug("closing a database connection: %s", exc)
            self._connections.clear()

    async def __aenter__(self) -> "Database":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` in one write transaction; returns after COMMIT."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._run, fn, args, True)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run, fn, args, False)

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.broken():
            with self._lock:
                self._connections.remove(conn)
            conn = None
        if conn is None:
            conn = connect(self.url)
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _run(self, fn: Callable[..., T], args: tuple, write: bool) -> T:
        conn = self._connection()
        with conn.transaction(write):
            return fn(conn, *args)
