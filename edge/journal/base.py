"""What every domain store of the journal shares: the one connection, the rows as dicts, and
the outcomes the stores hand back.

Each domain's SQL lives in its own module (chargers.py, transactions.py, ...) as a mixin over
StoreBase; store.py composes them into the one Store. Domain modules import only this module.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any


class StoreBase:
    """The one connection every domain store works on; a Store is composed in store.py."""

    conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn


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
