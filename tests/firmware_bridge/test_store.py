"""The bridge's SQLite store: queued in order, durable across reopening, one commit per change."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from firmware_bridge.store import Store


def test_messages_leave_in_the_order_they_were_queued_and_survive_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "bridge.sqlite")
    local = store.start_transaction("TAG-1", 100, "2026-01-01T10:00:00.000Z", connector_id=1)
    store.enqueue("MeterValues", {"connector_id": 1, "meter_value": [{"timestamp": "t1"}]}, local)
    store.stop_transaction(local, 250, "2026-01-01T11:00:00.000Z", "EVDisconnected")
    store.close()

    store = Store(tmp_path / "bridge.sqlite")
    order = []
    while (head := store.head()) is not None:
        order.append((head.action, head.local_tx))
        store.remove(head.id)
    assert order == [("StartTransaction", local), ("MeterValues", local), ("StopTransaction", local)]
    assert store.open_transaction() is None


def test_a_running_transaction_and_its_edge_id_survive(tmp_path: Path) -> None:
    store = Store(tmp_path / "bridge.sqlite")
    local = store.start_transaction("TAG-1", 100, "2026-01-01T10:00:00.000Z", connector_id=1)
    start = store.head()
    assert start is not None and start.payload == {"connector_id": 1, "id_tag": "TAG-1", "meter_start": 100,
                                                   "timestamp": "2026-01-01T10:00:00.000Z"}
    store.set_transaction_id(local, 1234)
    store.close()
    reopened = Store(tmp_path / "bridge.sqlite").open_transaction()
    assert reopened is not None and (reopened.local_id, reopened.transaction_id) == (local, 1234)


def test_settings_are_json_and_decimals_become_numbers(tmp_path: Path) -> None:
    from decimal import Decimal
    store = Store(tmp_path / "bridge.sqlite")
    store.put_setting("profiles", [{"limit": Decimal("10.5")}])
    store.put_setting("profiles", [{"limit": Decimal("11.5")}])
    assert store.setting("profiles") == [{"limit": 11.5}]
    assert store.setting("missing", 7) == 7


def test_durable_settings(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)


def test_a_store_from_a_newer_release_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="newer bridge"):
        Store(path)


def test_old_transactions_are_forgotten_once_nothing_refers_to_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "bridge.sqlite")
    for n in range(5):
        local = store.start_transaction(f"TAG-{n}", n, "2026-01-01T10:00:00.000Z", connector_id=1)
        store.stop_transaction(local, n + 1, "2026-01-01T10:30:00.000Z", "Local")
    while (head := store.head()) is not None and head.local_tx != 5:
        store.remove(head.id)
    store.forget_old_transactions(keep=1)
    # 1-4 are delivered and old; 5 still has messages queued.
    assert [store.transaction_id(n) for n in range(1, 6)] == [None] * 5
    db = sqlite3.connect(tmp_path / "bridge.sqlite")
    assert [r[0] for r in db.execute("SELECT local_id FROM transactions")] == [5]
