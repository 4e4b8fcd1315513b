"""The journal's reads for OCPP 2.0.1 TransactionEvents (edge/ocpp/v201/transactions.py) beyond
transactions.py's map: which of a station's transactions are still open, and which samples of a
transaction are stored already (a redelivered Updated stores its samples once)."""

from __future__ import annotations

from typing import Iterable

from edge.journal.base import StoreBase


class StationEventStore(StoreBase):
    def open_station_transactions(self, charger_id: str) -> list[str]:
        """The station's transactionIds the edge has not seen end: its session waits for a token, or runs."""
        return [row[0] for row in self.conn.execute(
            """SELECT s.station_tx_id FROM station_transactions s LEFT JOIN transactions t ON t.id = s.transaction_id
               WHERE s.charger_id = ? AND (s.transaction_id IS NULL OR t.state = 'active')
               ORDER BY s.created_at, s.station_tx_id""", (charger_id,))]

    def stored_sample_keys(self, transaction_id: int, timestamps: Iterable[str]) -> set[tuple]:
        """(timestamp, measurand, phase, location, context, value) of the transaction's samples at
        `timestamps`: what a redelivered event would store a second time."""
        stamps = sorted(set(timestamps))
        if not stamps:
            return set()
        rows = self.conn.execute(
            f"""SELECT timestamp, measurand, phase, location, context, value FROM meter_samples
                WHERE transaction_id = ? AND timestamp IN ({", ".join("?" * len(stamps))})""",
            (transaction_id, *stamps))
        return {tuple(row) for row in rows}
