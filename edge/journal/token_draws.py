"""The most each completed session's car drew on a phase, by token: what edge.dlm.history learns a
token's car's maximum from (a car that drew near its EVSE's maximum takes it, so the planner need not
guess 16 A for it before it shows so again). Read-only: from the transactions and their meter samples."""

from __future__ import annotations

from typing import Any

from edge.journal.base import StoreBase, _rows


def most_drawn_by_session(store: StoreBase, limit: int) -> list[dict[str, Any]]:
    """The last `limit` completed transactions that carry a current, newest first: id_tag and `drew`,
    the highest Current.Import (A) among their samples, a phase's or one without a phase."""
    return _rows(store.conn.execute(
        """SELECT t.id AS transaction_id, t.id_tag AS id_tag, MAX(s.value) AS drew
             FROM (SELECT id, id_tag FROM transactions WHERE state = 'completed' ORDER BY id DESC LIMIT ?) t
             JOIN meter_samples s ON s.transaction_id = t.id
            WHERE s.measurand = 'Current.Import' AND (s.unit IS NULL OR s.unit = 'A')
              AND (s.phase IS NULL OR s.phase IN ('', 'L1', 'L2', 'L3'))
            GROUP BY t.id ORDER BY t.id DESC""", (limit,)))
