"""The journal's meter samples: the sampled values of MeterValues and of a transaction's stop."""

from __future__ import annotations

from typing import Any, Iterable

from edge.journal.base import StoreBase, Sample, _rows


class SampleStore(StoreBase):
    def record_samples(self, charger_id: str, samples: Iterable[Sample], received_at: str) -> int:
        cur = self.conn.executemany(
            """INSERT INTO meter_samples (charger_id, connector_id, transaction_id, timestamp, measurand,
                                          phase, value, unit, context, location, received_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(charger_id, s.connector_id, s.transaction_id, s.timestamp, s.measurand, s.phase, s.value,
              s.unit, s.context, s.location, received_at) for s in samples],
        )
        return cur.rowcount

    def samples(self, *, transaction_id: int | None = None, charger_id: str | None = None,
                limit: int = 1000) -> list[dict[str, Any]]:
        if transaction_id is not None:
            return _rows(self.conn.execute(
                "SELECT * FROM meter_samples WHERE transaction_id = ? ORDER BY timestamp, id LIMIT ?",
                (transaction_id, limit)))
        return _rows(self.conn.execute(
            "SELECT * FROM meter_samples WHERE charger_id = ? ORDER BY id DESC LIMIT ?", (charger_id, limit)))
