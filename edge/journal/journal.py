"""The journal: one SQLite file with everything that must survive a power cut.

Writes are group-committed: callers `await journal.write(Store.method, ...)`,
the journal's task gathers every write that is waiting, runs them in one
SQLite transaction on its own thread (an fsync blocks for milliseconds on an
SD card; the event loop must not), commits, and only then resolves the
callers' futures. So an answer to a charger is sent after its record is on
disk, and 500 chargers cost one fsync per batch instead of one each.

The thread is the only one in the edge; the hand-over is the executor call.

A commit's fsync costs the machine some 250 us of CPU (measured on the bench VM), whatever the batch
holds: on a busy site (writes arriving faster than BUSY_GAP_S apart, on average) the journal waits up to
COMMIT_WINDOW_S after a batch's first write for the writes of other chargers' messages, and commits them
together. Nobody is answered before the commit either way; a quiet site commits each write at once.

Reads: a hand-over to the thread and back costs the edge ~50 us of CPU, a read by key a few. So a read
is run by the event loop itself, on a second, read-only connection, in one read transaction (one
snapshot: what was committed when it began, as a read on the thread sees what was committed before it;
never anything uncommitted), within INLINE_READ_STEPS of SQLite's virtual machine: a read that tries to
write or runs longer is stopped and run again on the thread, so a big read never holds up the loop and
nothing is done twice.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from edge.journal.store import Store, connect

log = logging.getLogger(__name__)
T = TypeVar("T")

# Upper bound on writes per commit: keeps one batch's latency bounded.
MAX_BATCH = 512
# On a busy site a batch waits this long after its first write for more (see the module doc).
COMMIT_WINDOW_S = 0.010
BUSY_GAP_S = 0.050
# A read the loop runs itself is stopped after this many SQLite VM steps (some hundred microseconds) and
# run on the journal's thread instead; a lookup by key takes a few hundred.
INLINE_READ_STEPS = 20_000
_STEPS_PER_TICK = 1000
# The outcome of an inline read that must be run on the thread.
_ON_THE_THREAD = object()


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("journal write failed: %s", future.exception())


class Journal:
    def __init__(self, path: str):
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._store: Store | None = None
        self._queue: asyncio.Queue[tuple[Callable, tuple, asyncio.Future]] = asyncio.Queue()
        # The loop's own read-only connection (see the module doc).
        self._reader: Store | None = None
        # The mean gap between writes arriving (an exponential average), and when the last one came.
        self._gap = 1.0
        self._last_write = 0.0
        self._held: list = []   # a batch taken from the queue, waiting out its window
        self.commits = 0
        self.inline_reads = 0
        self._commit_started: float | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._executor, connect, self.path)
        self._store = Store(conn)
        self._reader = Store(_read_only(self.path))

    async def close(self) -> None:
        await self._flush_pending()
        if self._reader is not None:
            self._reader.conn.close()
            self._reader = None
        if self._store is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._store.conn.close)
            self._store = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> "Journal":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(store, *args)` in the next group commit; returns after COMMIT."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._arrived(loop.time())
        self._queue.put_nowait((fn, (args, kwargs), future))
        return await future

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue `fn(store, *args)` for the next group commit without waiting:
        for records nobody is answered on (e.g. series points); a failure is logged."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        future.add_done_callback(_log_failure)
        self._arrived(loop.time())
        self._queue.put_nowait((fn, (args, kwargs), future))

    def _arrived(self, now: float) -> None:
        self._gap += 0.1 * (min(now - self._last_write, 1.0) - self._gap)
        self._last_write = now

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(store, *args)` on committed data: by the loop itself when it is quick (see the module doc),
        else on the journal's thread."""
        store = self._require_store()
        if self._reader is not None:
            value = _read_inline(self._reader, fn, args, kwargs)
            if value is not _ON_THE_THREAD:
                self.inline_reads += 1
                return value
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: fn(store, *args, **kwargs))

    async def run(self) -> None:
        """The commit loop; run it under the app's TaskGroup."""
        while True:
            batch = [await self._queue.get()]
            if self._gap < BUSY_GAP_S and self._queue.qsize() < MAX_BATCH - 1:
                # A busy site: the writes of the next few ms join this one. Held where close() finds
                # them, should the edge stop meanwhile.
                self._held = batch
                await asyncio.sleep(COMMIT_WINDOW_S)
                self._held = []
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _flush_pending(self) -> None:
        batch, self._held = self._held, []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch and self._store is not None:
            await self._commit(batch)

    def healthy(self, stuck_after: float = 20.0) -> bool:
        """False when a commit has hung (a dying SD card): the watchdog then
        stops pinging and systemd restarts us rather than acknowledge nothing."""
        started = self._commit_started
        return self._store is not None and (started is None or time.monotonic() - started < stuck_after)

    async def _commit(self, batch: list) -> None:
        store = self._require_store()
        loop = asyncio.get_running_loop()
        self._commit_started = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, _run_batch, store, batch)
        except BaseException as exc:  # the COMMIT itself failed: nobody's write is durable
            log.error("journal commit failed: %s", exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._commit_started = None
        self.commits += 1
        for (_, _, future), (ok, value) in zip(batch, results):
            if future.done():  # the caller was cancelled; the write is committed anyway
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _require_store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the journal is not open")
        return self._store


def _read_only(path: str) -> sqlite3.Connection:
    """The loop's connection for reads: read-only, so a read that tries to write fails and goes to the thread."""
    conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA busy_timeout = 0")     # never wait on the loop: the thread waits instead
    return conn


def _read_inline(reader: Store, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """A read by the loop on its own connection: its value, its exception, or _ON_THE_THREAD when it
    must run on the journal's thread: it tried to write, SQLite was busy, or it ran past
    INLINE_READ_STEPS (stopped; nothing of it done, the connection is read-only)."""
    conn = reader.conn
    ticks = [INLINE_READ_STEPS // _STEPS_PER_TICK]

    def tick() -> bool:
        ticks[0] -= 1
        return ticks[0] < 0     # true: SQLite interrupts the statement

    conn.set_progress_handler(tick, _STEPS_PER_TICK)
    try:
        conn.execute("BEGIN")   # one snapshot for all of the read's statements
        value = fn(reader, *args, **kwargs)
    except sqlite3.OperationalError:
        return _ON_THE_THREAD   # interrupted, busy, or it wrote: the thread runs it (and raises what it raises)
    except Exception:
        if ticks[0] < 0:
            return _ON_THE_THREAD   # interrupted, and the error became another on its way out
        raise
    finally:
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    # Interrupted and the error swallowed on the way: the value may be short of rows.
    return _ON_THE_THREAD if ticks[0] < 0 else value


def _run_batch(store: Store, batch: list) -> list[tuple[bool, Any]]:
    """On the journal thread: one transaction, one savepoint per write so a
    failing write is rolled back alone and the others still commit.

    Whatever a write raises (an integer SQLite cannot hold raises OverflowError,
    a bug anything) is that write's failure, handed to its caller only. When a
    failure took the whole transaction with it (SQLite rolls back by itself on
    some errors), the writes before it are run again in a new one without it."""
    failed: dict[int, Exception] = {}
    while True:
        results = _attempt_batch(store, batch, failed)
        if results is not None:
            return results


def _attempt_batch(store: Store, batch: list, failed: dict[int, Exception]) -> list[tuple[bool, Any]] | None:
    """One try at the batch, skipping the writes in `failed`; None when a new
    failure ended the transaction (it is added to `failed`, nothing committed)."""
    conn = store.conn
    results: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i, (fn, (args, kwargs), _) in enumerate(batch):
            if i in failed:
                results.append((False, failed[i]))
                continue
            conn.execute("SAVEPOINT w")
            try:
                value = fn(store, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the caller gets it; the batch's other writes go on
                if not conn.in_transaction:
                    failed[i] = exc
                    log.error("journal: a failing write (%s) ended its transaction; the other writes of the "
                              "batch are run again without it", exc)
                    return None
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                results.append((False, exc))
            else:
                conn.execute("RELEASE w")
                results.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results
