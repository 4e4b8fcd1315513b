"""The journal: migrations, group commit, durability settings, failing writes."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from edge.journal import Journal, Store
from edge.journal.migrations import MIGRATIONS, migrate, schema_version
from edge.journal.store import connect


def test_fresh_journal_is_wal_full_and_current(tmp_path):
    conn = connect(str(tmp_path / "j.sqlite"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert schema_version(conn) == len(MIGRATIONS)


def test_upgrade_keeps_data_and_failed_migration_changes_nothing(tmp_path):
    path = str(tmp_path / "j.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.execute("INSERT INTO chargers (id, registration, first_seen) VALUES ('CP-1', 'accepted', 'now')")
    upgraded = MIGRATIONS + ["ALTER TABLE chargers ADD COLUMN location TEXT;"]
    assert migrate(conn, upgraded) == len(MIGRATIONS) + 1
    assert conn.execute("SELECT id, location FROM chargers").fetchall() == [("CP-1", None)]
    broken = upgraded + ["ALTER TABLE chargers ADD COLUMN site TEXT; THIS IS NOT SQL;"]
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert schema_version(conn) == len(MIGRATIONS) + 1
    assert "site" not in [r[1] for r in conn.execute("PRAGMA table_info(chargers)")]


def test_newer_journal_is_refused(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "j.sqlite"), isolation_level=None)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this software"):
        migrate(conn)


async def test_group_commit_and_a_failing_write_fails_alone(tmp_path):
    def boom(store: Store) -> None:
        store.conn.execute("INSERT INTO chargers (id) VALUES ('broken')")  # NOT NULL violation

    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())
        writes = [journal.write(Store.ensure_charger, f"CP-{i}", "2026-11-23T10:00:00Z") for i in range(50)]
        results = await asyncio.gather(*writes, journal.write(boom), return_exceptions=True)
        assert isinstance(results[-1], sqlite3.IntegrityError)
        assert all(r is None for r in results[:-1])
        assert journal.commits < 50  # batched, not one commit each
        runner.cancel()
    # Reopened from disk: everything acknowledged is there.
    conn = connect(str(tmp_path / "j.sqlite"))
    assert conn.execute("SELECT count(*) FROM chargers").fetchone()[0] == 50
