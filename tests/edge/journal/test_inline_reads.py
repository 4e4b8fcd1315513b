"""The journal (edge/journal/journal.py): its reads run by the event loop itself when that is quick and
safe: they see what is committed and nothing else, and a read that is long or writes is run on the
journal's thread instead, whole and once; and its commit window on a busy site loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from edge.journal import Journal, Store
from edge.journal.store import connect

AT = "2026-12-07T10:00:00Z"


def chargers(store: Store) -> list[str]:
    return [row[0] for row in store.conn.execute("SELECT id FROM chargers ORDER BY id")]


def count_to(store: Store, n: int) -> int:
    """A read that takes SQLite far more steps than an inline read may."""
    return store.conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c",
        (n,)).fetchone()[0]


async def test_a_quick_read_on_an_idle_journal_is_run_by_the_loop_and_sees_what_is_committed(tmp_path):
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())
        await journal.write(Store.ensure_charger, "CP-1", AT)
        assert await journal.read(chargers) == ["CP-1"]
        assert journal.inline_reads == 1
        assert threading.current_thread() is threading.main_thread()
        runner.cancel()


async def test_a_long_read_is_run_whole_on_the_thread(tmp_path):
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        assert await journal.read(count_to, 1_000_000) == 1_000_000
        assert journal.inline_reads == 0
        assert await journal.read(count_to, 10) == 10     # the connection is as it was: quick reads inline again
        assert journal.inline_reads == 1


async def test_a_read_that_writes_is_run_on_the_thread_and_writes_once(tmp_path):
    def sneaky(store: Store) -> int:
        store.conn.execute("INSERT INTO chargers (id, registration, first_seen) VALUES ('CP-9', 'accepted', ?)",
                           (AT,))
        return 1

    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        assert await journal.read(sneaky) == 1
        assert journal.inline_reads == 0
        assert await journal.read(chargers) == ["CP-9"]
        with pytest.raises(sqlite3.IntegrityError):      # the thread raises what the read raises
            await journal.read(sneaky)


async def test_a_read_never_sees_a_write_that_is_not_committed(tmp_path):
    writing, release = threading.Event(), threading.Event()

    def slow_write(store: Store) -> None:
        store.ensure_charger("CP-2", AT)
        writing.set()
        release.wait(10)

    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())
        await journal.write(Store.ensure_charger, "CP-1", AT)
        write = asyncio.create_task(journal.write(slow_write))
        await asyncio.to_thread(writing.wait, 10)        # the write is in its transaction, not committed
        assert await journal.read(chargers) == ["CP-1"]  # what is committed, without waiting for the write
        assert journal.inline_reads == 1
        release.set()
        await write
        assert await journal.read(chargers) == ["CP-1", "CP-2"]
        runner.cancel()


def two_counts(store: Store) -> tuple[int, int]:
    return (store.conn.execute("SELECT count(*) FROM chargers").fetchone()[0],
            store.conn.execute("SELECT count(*) FROM chargers").fetchone()[0])


async def test_a_read_sees_one_snapshot(tmp_path):
    """A read's statements all see the same commit, even when one lands in between."""
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())

        def counts_with_a_commit_between(store: Store) -> tuple[int, int]:
            first = store.conn.execute("SELECT count(*) FROM chargers").fetchone()[0]
            other = connect(str(tmp_path / "j.sqlite"))      # another writer commits meanwhile
            other.execute("INSERT INTO chargers (id, registration, first_seen) VALUES ('CP-X', 'accepted', ?)",
                          (AT,))
            other.close()
            return first, store.conn.execute("SELECT count(*) FROM chargers").fetchone()[0]

        assert await journal.read(counts_with_a_commit_between) == (0, 0)
        assert await journal.read(two_counts) == (1, 1)
        runner.cancel()


async def test_a_read_failing_inline_raises_its_own_error(tmp_path):
    def broken(store: Store) -> None:
        raise LookupError("a bug in a read")

    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        with pytest.raises(LookupError):
            await journal.read(broken)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await journal.read(lambda store: store.conn.execute("SELECT * FROM nowhere").fetchall())


async def test_a_write_waiting_out_a_busy_sites_commit_window_is_committed_when_the_edge_stops(tmp_path):
    """On a busy site a batch waits a few ms for more writes; an edge stopped meanwhile still commits it."""
    path = str(tmp_path / "j.sqlite")
    async with Journal(path) as journal:
        runner = asyncio.create_task(journal.run())
        for i in range(40):     # writes in quick succession: a busy site
            await journal.write(Store.ensure_charger, f"CP-{i}", AT)
        journal.submit(Store.ensure_charger, "CP-LAST", AT)
        for _ in range(1000):   # until the commit loop holds it in its window
            if journal._held:
                break
            await asyncio.sleep(0)
        assert journal._held, "a busy site's write waits for others to join its commit"
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    conn = connect(path)
    assert conn.execute("SELECT count(*) FROM chargers WHERE id = 'CP-LAST'").fetchone()[0] == 1
