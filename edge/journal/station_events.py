"""The journal's reads for OCPP 2.0.1 TransactionEvents (edge/ocpp/v201/transactions.py) beyond
transactions.py's map: which of a station's transactions are still open, which samples of a
transaction are stored already (a redelivered Updated stores its samples once), which seqNos of a
transaction were applied, and the Ended events held back until their turn (migration 20)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from edge.clock import parse_iso

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

    # -- the order of a transaction's events (seqNo) and the Ended held back until it is its turn --

    def transaction_seq_nos(self, charger_id: str, station_tx_id: str) -> list[int]:
        """The seqNos of the transaction's events applied so far, ascending."""
        return [row[0] for row in self.conn.execute(
            """SELECT seq_no FROM station_transaction_events WHERE charger_id = ? AND station_tx_id = ?
               ORDER BY seq_no""", (charger_id, station_tx_id))]

    def hold_transaction_event(self, charger_id: str, station_tx_id: str, seq_no: int, event: str,
                               at: str) -> None:
        self.conn.execute(
            """INSERT INTO held_transaction_events (charger_id, station_tx_id, seq_no, event, received_at)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""", (charger_id, station_tx_id, seq_no, event, at))

    def held_transaction_events(self, charger_id: str, station_tx_id: str | None = None) -> list[dict[str, Any]]:
        """Held events of the station (of one transaction), oldest seqNo first."""
        where, args = ("AND station_tx_id = ?", (station_tx_id,)) if station_tx_id is not None else ("", ())
        return [dict(row) for row in self.conn.execute(
            f"""SELECT * FROM held_transaction_events WHERE charger_id = ? {where}
                ORDER BY station_tx_id, seq_no""", (charger_id, *args))]

    def release_transaction_event(self, charger_id: str, station_tx_id: str, seq_no: int) -> None:
        self.conn.execute(
            "DELETE FROM held_transaction_events WHERE charger_id = ? AND station_tx_id = ? AND seq_no = ?",
            (charger_id, station_tx_id, seq_no))

    def restart_station_transaction(self, charger_id: str, station_tx_id: str, meter_start: int,
                                    start_time: str) -> bool:
        """A Started that arrives after a later event of its transaction: its start values are the
        transaction's, while its session has not started yet. -> whether they were taken."""
        return self.conn.execute(
            """UPDATE station_transactions SET meter_start = ?, start_time = ?
               WHERE charger_id = ? AND station_tx_id = ? AND transaction_id IS NULL""",
            (meter_start, start_time, charger_id, station_tx_id)).rowcount > 0

    def started_as(self, charger_id: str, station_tx: str, evse_id: int, tag: str, start_time: str,
                   meter_start: int) -> str | None:
        """The station's other transactionId whose session has this start (what the journal tells a session
        by: station, EVSE, id tag, start time, meter start), or None. transactions.py keeps that key UNIQUE
        and station_transactions.transaction_id too, so a second transactionId cannot map to that session."""
        row = self.conn.execute(
            """SELECT s.station_tx_id FROM transactions t JOIN station_transactions s
                   ON s.transaction_id = t.id AND s.charger_id = t.charger_id
               WHERE t.charger_id = ? AND t.connector_id = ? AND t.id_tag = ? AND t.start_time = ?
                 AND t.meter_start = ? AND s.station_tx_id <> ?""",
            (charger_id, evse_id, tag, start_time, meter_start, station_tx)).fetchone()
        return row[0] if row else None

    def booted_since(self, charger_id: str, since: datetime) -> bool:
        """Whether the station's last accepted BootNotification (chargers.last_boot) is after `since`."""
        row = self.conn.execute("SELECT last_boot FROM chargers WHERE id = ?", (charger_id,)).fetchone()
        booted = parse_iso(row[0]) if row and row[0] else None
        return booted is not None and booted >= since
