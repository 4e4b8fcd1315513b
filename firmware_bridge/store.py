"""The bridge's own state on disk: one small SQLite file in its state directory.

It holds what must survive the edge being away and the bridge being
restarted: the transaction messages not yet answered by the edge (in the
order they happened), the running transaction, and the settings the edge
changed (availability, charging profiles, configuration keys).

A message counts as queued only once its COMMIT returned (WAL,
synchronous=FULL: after the fsync). The writes are a few per meter
interval, so they run on the event loop; a worker thread would cost more
than the milliseconds of an fsync it saves. Only this module speaks SQL.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MIGRATIONS = [
    """
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        action      TEXT NOT NULL,             -- StartTransaction | MeterValues | StopTransaction
        payload     TEXT NOT NULL,             -- snake_case JSON, without transaction_id
        local_tx    INTEGER                    -- transactions.local_id it belongs to
    );
    CREATE TABLE transactions (
        local_id        INTEGER PRIMARY KEY AUTOINCREMENT,
        id_tag          TEXT NOT NULL,
        meter_start     INTEGER NOT NULL,
        started_at      TEXT NOT NULL,
        transaction_id  INTEGER,               -- the edge's id, once it answered
        stopped_at      TEXT
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL                   -- JSON
    );
    """,
]


@dataclass(frozen=True)
class Queued:
    id: int
    action: str
    payload: dict[str, Any]
    local_tx: int | None


@dataclass(frozen=True)
class OpenTransaction:
    local_id: int
    id_tag: str
    meter_start: int
    started_at: str
    transaction_id: int | None


def _json(value: Any) -> str:
    # The ocpp library hands smart-charging numbers over as Decimal.
    return json.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise RuntimeError(f"{self.path} was written by a newer bridge (schema {version}); not touching it")
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            # One transaction per step, with its version bump: a power cut leaves the old schema.
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def _write(self, *statements: tuple[str, tuple]) -> list[int]:
        """Run the statements in one transaction; returns their lastrowids once committed."""
        rowids = []
        with self._db:  # BEGIN ... COMMIT, or ROLLBACK on error
            self._db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                rowids.append(self._db.execute(sql, args).lastrowid)
        return rowids

    # ---- the outbox ------------------------------------------------------------------

    def enqueue(self, action: str, payload: dict[str, Any], local_tx: int | None) -> int:
        return self._write(("INSERT INTO outbox (action, payload, local_tx) VALUES (?, ?, ?)",
                            (action, _json(payload), local_tx)))[0]

    def head(self) -> Queued | None:
        row = self._db.execute("SELECT * FROM outbox ORDER BY id LIMIT 1").fetchone()
        return None if row is None else Queued(row["id"], row["action"], json.loads(row["payload"]), row["local_tx"])

    def remove(self, queued_id: int) -> None:
        self._write(("DELETE FROM outbox WHERE id = ?", (queued_id,)))

    def queued(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    # ---- transactions ------------------------------------------------------------------

    def start_transaction(self, id_tag: str, meter_start: int, started_at: str, connector_id: int) -> int:
        """Record the transaction and queue its StartTransaction in one commit; returns its local id."""
        payload = {"connector_id": connector_id, "id_tag": id_tag, "meter_start": meter_start,
                   "timestamp": started_at}
        # last_insert_rowid(): the transaction row inserted just before, in the same commit.
        local_id = self._write(
            ("INSERT INTO transactions (id_tag, meter_start, started_at) VALUES (?, ?, ?)",
             (id_tag, meter_start, started_at)),
            ("INSERT INTO outbox (action, payload, local_tx) VALUES (?, ?, last_insert_rowid())",
             ("StartTransaction", _json(payload))))[0]
        return local_id

    def stop_transaction(self, local_id: int, meter_stop: int, stopped_at: str, reason: str) -> None:
        """Close the transaction and queue its StopTransaction in one commit."""
        payload = {"meter_stop": meter_stop, "timestamp": stopped_at, "reason": reason}
        self._write(("UPDATE transactions SET stopped_at = ? WHERE local_id = ?", (stopped_at, local_id)),
                    ("INSERT INTO outbox (action, payload, local_tx) VALUES (?, ?, ?)",
                     ("StopTransaction", _json(payload), local_id)))

    def open_transaction(self) -> OpenTransaction | None:
        row = self._db.execute("SELECT * FROM transactions WHERE stopped_at IS NULL "
                               "ORDER BY local_id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return OpenTransaction(row["local_id"], row["id_tag"], row["meter_start"], row["started_at"],
                               row["transaction_id"])

    def set_transaction_id(self, local_id: int, transaction_id: int) -> None:
        """The edge's answer to StartTransaction."""
        self._write(("UPDATE transactions SET transaction_id = ? WHERE local_id = ?", (transaction_id, local_id)))

    def transaction_id(self, local_id: int) -> int | None:
        row = self._db.execute("SELECT transaction_id FROM transactions WHERE local_id = ?", (local_id,)).fetchone()
        return None if row is None else row["transaction_id"]

    def forget_old_transactions(self, keep: int = 100) -> None:
        """Closed transactions nothing in the outbox still refers to, but the latest `keep`."""
        self._write(("DELETE FROM transactions WHERE stopped_at IS NOT NULL "
                     "AND local_id NOT IN (SELECT local_tx FROM outbox WHERE local_tx IS NOT NULL) "
                     "AND local_id NOT IN (SELECT local_id FROM transactions ORDER BY local_id DESC LIMIT ?)",
                     (keep,)))

    # ---- settings ------------------------------------------------------------------

    def setting(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def put_setting(self, key: str, value: Any) -> None:
        self._write(("INSERT INTO settings (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, _json(value))))
