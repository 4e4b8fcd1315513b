"""Write isolation in the journal's group commit: one charger's bad integer (or a
bug in one write) fails that write alone; the other writes of the same commit
are on disk and their callers get their answers."""

from __future__ import annotations

import asyncio
import sqlite3

from edge.journal import Journal, Store
from edge.journal.store import connect

AT = "2026-11-23T10:00:00Z"


def _status(charger_id: str, connector_id: int):
    return (Store.record_status, charger_id, connector_id, "Available", "NoError", None, None, None, None, AT)


async def _batch(journal: Journal, writes: list[tuple]) -> list:
    """All of `writes` in one group commit (queued before the commit loop runs)."""
    futures = [asyncio.ensure_future(journal.write(*w)) for w in writes]
    await asyncio.sleep(0)          # every write is queued ...
    runner = asyncio.create_task(journal.run())   # ... before the first batch is taken
    try:
        return await asyncio.gather(*futures, return_exceptions=True)
    finally:
        runner.cancel()


async def test_an_integer_sqlite_cannot_hold_fails_its_write_alone(tmp_path):
    path = str(tmp_path / "j.sqlite")
    async with Journal(path) as journal:
        results = await _batch(journal, [
            _status("CP-GOOD", 1),
            (Store.start_transaction, "CP-BAD", 1, "TAG", "Accepted", 2**70, AT, None, AT),   # meterStart 2**70
            _status("CP-GOOD", 2),
            _status("CP-BAD", 2**64),                                                         # connectorId 2**64
            _status("CP-GOOD", 3),
        ])
        assert journal.commits == 1
    assert isinstance(results[1], OverflowError) and isinstance(results[3], OverflowError)
    assert [results[i] for i in (0, 2, 4)] == [None, None, None]
    conn = connect(path)
    assert [tuple(r) for r in conn.execute("SELECT charger_id, connector_id FROM connectors ORDER BY 2")] == [
        ("CP-GOOD", 1), ("CP-GOOD", 2), ("CP-GOOD", 3)]
    assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_write_that_takes_its_transaction_down_fails_alone_and_the_rest_are_retried(tmp_path):
    class Broken(Exception):
        pass

    def ends_the_transaction(store: Store) -> None:
        store.conn.execute("INSERT INTO chargers (id, registration, first_seen) VALUES ('GONE', 'accepted', 'x')")
        store.conn.execute("ROLLBACK")      # as SQLite does by itself on some errors (a full disk, I/O)
        raise Broken("the transaction is gone")

    path = str(tmp_path / "j.sqlite")
    async with Journal(path) as journal:
        results = await _batch(journal, [(Store.ensure_charger, f"CP-{i}", AT) for i in range(3)]
                               + [(ends_the_transaction,)]
                               + [(Store.ensure_charger, f"CP-{i}", AT) for i in range(3, 6)])
    assert isinstance(results[3], Broken)
    assert results[:3] + results[4:] == [None] * 6
    conn = connect(path)
    assert sorted(r[0] for r in conn.execute("SELECT id FROM chargers")) == [f"CP-{i}" for i in range(6)]


async def test_an_unexpected_error_in_a_write_is_its_callers_not_the_commit_loops(tmp_path):
    def buggy(store: Store) -> None:
        store.ensure_charger("HALF-DONE", AT)
        raise ZeroDivisionError("a bug in one write")

    path = str(tmp_path / "j.sqlite")
    async with Journal(path) as journal:
        results = await _batch(journal, [(buggy,), (Store.ensure_charger, "CP-1", AT)])
        # The commit loop is still there for the next writes.
        runner = asyncio.create_task(journal.run())
        await asyncio.wait_for(journal.write(Store.ensure_charger, "CP-2", AT), 5)
        runner.cancel()
    assert isinstance(results[0], ZeroDivisionError) and results[1] is None
    conn = sqlite3.connect(path)
    assert sorted(r[0] for r in conn.execute("SELECT id FROM chargers")) == ["CP-1", "CP-2"]
