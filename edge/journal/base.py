"""What every domain store of the journal shares: the one connection, the rows as dicts, and
the outcomes the stores hand back.

Each domain's SQL lives in its own module (chargers.py, transactions.py, ...) as a mixin over
StoreBase; store.py composes them into the one Store. Domain modules import only this module.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any


# The per-charger logs a charger's id leaves rows in; a forgotten stranger's go with it (chargers.py, logs.py).
CHARGER_LOGS = ("network_log", "communication_log")


class StoreBase:
    """The one connection every domain store works on; a Store is composed in store.py."""

    conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def _keep_newest(self, table: str, charger_id: str, keep: int) -> None:
        """A per-charger table bounded: the charger's newest `keep` rows (by id) stay, the older go."""
        self.conn.execute(
            f"""DELETE FROM {table} WHERE charger_id = ? AND id <= (
                  SELECT id FROM {table} WHERE charger_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
            (charger_id, charger_id, keep))


def _for_charger(charger_id: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its argument) of a listing of one charger's rows, or of all (None or '')."""
    return ("WHERE charger_id = ?", (charger_id,)) if charger_id else ("", ())


@dataclass(frozen=True)
class StartOutcome:
    transaction_id: int
    is_retry: bool          # the charger re-sent a StartTransaction we already have


@dataclass(frozen=True)
class StopOutcome:
    kind: str               # stopped | duplicate | unmatched | unmatched-duplicate
    transaction_id: int | None


@dataclass(frozen=True)
class Sample:
    connector_id: int
    transaction_id: int | None
    timestamp: str
    measurand: str
    phase: str | None
    value: float
    unit: str | None
    context: str | None
    location: str | None


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    return [dict(row) for row in cursor.fetchall()]
