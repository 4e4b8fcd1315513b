"""The journal's transactions: start and stop (with the charger's retries and stops we do not
know), the edge's own close, flags, and the corrections of a stop after the edge closed it
(a connector's truth, edge/sessions/connector.py).

Everything that writes a row of `transactions` lives here, whoever asks for it: the
authorization's flag (flag_transaction) and the charge records' notes and close
(add_transaction_flag, note_edge_stop, close_transaction). Reads for a charge record
(cdr_source) are in cdrs.py.
"""

from __future__ import annotations

from typing import Any

from edge.journal.base import StoreBase, StartOutcome, StopOutcome, _rows


class TransactionStore(StoreBase):
    def seed_transaction_ids(self, first_id: int) -> bool:
        """On a fresh journal, start transaction ids at `first_id` (derived from
        the time) instead of 1: a charger that still holds ids from before a
        journal was replaced cannot collide with new ones. No-op afterwards."""
        if self.conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'transactions'").fetchone():
            return False
        self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('transactions', ?)", (first_id - 1,))
        return True

    def start_transaction(self, charger_id: str, connector_id: int, id_tag: str, auth_status: str,
                          meter_start: int, start_time: str, reservation_id: int | None,
                          received_at: str, user_group: str | None = None, flag: str | None = None,
                          answered: str | None = None) -> StartOutcome:
        row = self.conn.execute(
            """SELECT id FROM transactions WHERE charger_id = ? AND connector_id = ? AND id_tag = ?
               AND start_time = ? AND meter_start = ?""",
            (charger_id, connector_id, id_tag, start_time, meter_start),
        ).fetchone()
        if row is not None:
            return StartOutcome(row[0], is_retry=True)
        cur = self.conn.execute(
            """INSERT INTO transactions (charger_id, connector_id, id_tag, auth_status, reservation_id,
                                         meter_start, start_time, start_received_at, user_group, flag, answered_status)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (charger_id, connector_id, id_tag, auth_status, reservation_id, meter_start, start_time, received_at,
             user_group, flag, answered or auth_status),
        )
        return StartOutcome(cur.lastrowid, is_retry=False)

    def stop_transaction(self, charger_id: str, transaction_id: int, meter_stop: int, stop_time: str,
                         reason: str | None, id_tag: str | None, received_at: str) -> StopOutcome:
        """The charger's stop. -> stopped; corrected: the edge had closed it (silent, offline, superseded,
        its connector said Available): the charger's values replace the close, which is kept in
        transaction_corrections; duplicate: the charger stopped it before; unmatched: not ours."""
        row = self.conn.execute(
            "SELECT state, closed_by FROM transactions WHERE id = ? AND charger_id = ?", (transaction_id, charger_id)
        ).fetchone()
        if row is not None:
            if row["state"] != "active" and row["closed_by"] != "edge":
                return StopOutcome("duplicate", transaction_id)
            if row["state"] != "active":
                self._correct(transaction_id, "late StopTransaction", received_at, meter_stop, stop_time, reason)
                self.conn.execute(
                    """UPDATE transactions SET meter_stop = ?, stop_time = ?, stop_received_at = ?, stop_reason = ?,
                         stop_id_tag = ?, closed_by = 'charger', corrected = ? WHERE id = ?""",
                    (meter_stop, stop_time, received_at, reason, id_tag,
                     f"corrected by the charger's late StopTransaction (received {received_at})", transaction_id))
                return StopOutcome("corrected", transaction_id)
            self.conn.execute(
                """UPDATE transactions SET meter_stop = ?, stop_time = ?, stop_received_at = ?,
                     stop_reason = ?, stop_id_tag = ?, state = 'completed', closed_by = 'charger' WHERE id = ?""",
                (meter_stop, stop_time, received_at, reason, id_tag, transaction_id),
            )
            return StopOutcome("stopped", transaction_id)
        cur = self.conn.execute(
            """INSERT INTO unmatched_stops (charger_id, charger_transaction_id, id_tag, meter_stop,
                                            stop_time, stop_reason, received_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT DO NOTHING""",
            (charger_id, transaction_id, id_tag, meter_stop, stop_time, reason, received_at),
        )
        return StopOutcome("unmatched" if cur.rowcount == 1 else "unmatched-duplicate", None)

    def transaction_owner(self, transaction_id: int) -> tuple[str, int] | None:
        row = self.conn.execute(
            "SELECT charger_id, connector_id FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def active_transactions(self, charger_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM transactions WHERE state = 'active'"
        args: tuple = ()
        if charger_id is not None:
            sql += " AND charger_id = ?"
            args = (charger_id,)
        return _rows(self.conn.execute(sql + " ORDER BY id", args))

    def transactions(self, *, charger_id: str | None = None, state: str | None = None,
                     limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
        clauses, args = [], []
        for column, value in (("charger_id", charger_id), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if before_id is not None:
            clauses.append("id < ?")
            args.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = _rows(self.conn.execute(
            f"SELECT * FROM transactions {where} ORDER BY id DESC LIMIT ?", (*args, limit)))
        for row in rows:
            row["energy_wh"] = (row["meter_stop"] - row["meter_start"]) if row["meter_stop"] is not None else None
        return rows

    def unmatched_stops(self, charger_id: str | None = None) -> list[dict[str, Any]]:
        if charger_id is None:
            return _rows(self.conn.execute("SELECT * FROM unmatched_stops ORDER BY id"))
        return _rows(self.conn.execute(
            "SELECT * FROM unmatched_stops WHERE charger_id = ? ORDER BY id", (charger_id,)))

    # -- written for others: authorization's flag, the charge records' notes and the edge's close --

    def flag_transaction(self, transaction_id: int, flag: str) -> None:
        self.conn.execute("UPDATE transactions SET flag = ? WHERE id = ?", (flag, transaction_id))

    def add_transaction_flag(self, transaction_id: int, note: str) -> None:
        """Add a note to a transaction's flags (its record's `flags` carry them), after any there."""
        self.conn.execute("UPDATE transactions SET flag = CASE WHEN flag IS NULL OR flag = '' THEN ? "
                          "ELSE flag || '; ' || ? END WHERE id = ?", (note, note, transaction_id))

    def note_edge_stop(self, transaction_id: int, why: str) -> None:
        self.conn.execute("UPDATE transactions SET edge_stop = ? WHERE id = ?", (why, transaction_id))

    def close_transaction(self, transaction_id: int, meter_stop: int, stop_time: str, received_at: str,
                          why: str) -> bool:
        """The edge ends a session the charger never stopped (from its last known values)."""
        cur = self.conn.execute(
            """UPDATE transactions SET meter_stop = ?, stop_time = ?, stop_received_at = ?, stop_reason = 'Other',
                 edge_stop = ?, state = 'completed', closed_by = 'edge' WHERE id = ? AND state = 'active'""",
            (meter_stop, stop_time, received_at, why, transaction_id))
        return cur.rowcount == 1

    # -- a connector's truth (edge/sessions/connector.py) ----------------------------

    def prove_running(self, transaction_id: int, why: str) -> None:
        """A start the charger was refused runs after all (its meter rose, its connector says Charging)."""
        self.conn.execute("UPDATE transactions SET proven_running = ? WHERE id = ? AND proven_running IS NULL",
                          (why, transaction_id))

    def closed_by_edge(self, transaction_id: int, charger_id: str, connector_id: int) -> bool:
        """Whether the edge closed this transaction of that connector and the charger has not stopped it since."""
        return self.conn.execute(
            """SELECT 1 FROM transactions WHERE id = ? AND charger_id = ? AND connector_id = ? AND state = 'completed'
               AND closed_by = 'edge'""", (transaction_id, charger_id, connector_id)).fetchone() is not None

    def correct_from_values(self, transaction_id: int, register_wh: int, at: str, received_at: str) -> bool:
        """Late MeterValues of a transaction the edge closed: a register above the close moves its
        stop there (the close is kept in transaction_corrections). -> whether the stop moved."""
        row = self.conn.execute("SELECT meter_stop, stop_time FROM transactions WHERE id = ?",
                                (transaction_id,)).fetchone()
        if row is None or row["meter_stop"] is None or register_wh <= row["meter_stop"]:
            return False
        stop_time = max(at, row["stop_time"] or at)
        self._correct(transaction_id, "late MeterValues", received_at, register_wh, stop_time, "Other")
        self.conn.execute("UPDATE transactions SET meter_stop = ?, stop_time = ?, corrected = ? WHERE id = ?",
                          (register_wh, stop_time, f"corrected by the charger's late MeterValues (received "
                                                   f"{received_at})", transaction_id))
        return True

    def _correct(self, transaction_id: int, why: str, at: str, meter_stop: int, stop_time: str,
                 reason: str | None) -> None:
        self.conn.execute(
            """INSERT INTO transaction_corrections (transaction_id, why, at, meter_stop_before, stop_time_before,
                 stop_reason_before, stop_received_at_before, meter_stop, stop_time, stop_reason)
               SELECT id, ?, ?, meter_stop, stop_time, stop_reason, stop_received_at, ?, ?, ?
               FROM transactions WHERE id = ?""", (why, at, meter_stop, stop_time, reason, transaction_id))

    def transaction_corrections(self, transaction_id: int) -> list[dict[str, Any]]:
        """How a transaction's stop was corrected after the edge closed it, oldest first."""
        return _rows(self.conn.execute("SELECT * FROM transaction_corrections WHERE transaction_id = ? ORDER BY id",
                                       (transaction_id,)))

    # -- OCPP 2.0.1: the station's transactionId (a string) for the site's transaction (edge/ocpp/v201) --

    def station_transaction(self, charger_id: str, station_tx_id: str) -> dict[str, Any] | None:
        """The station's transaction as the edge knows it: transaction_id (None until its session
        started), evse_id, meter_start, start_time; None for a transactionId never seen."""
        row = self.conn.execute(
            """SELECT transaction_id, evse_id, meter_start, start_time FROM station_transactions
               WHERE charger_id = ? AND station_tx_id = ?""", (charger_id, station_tx_id)).fetchone()
        return dict(row) if row else None

    def station_tx_id(self, charger_id: str, transaction_id: int) -> str | None:
        """The station's transactionId of the site's transaction `transaction_id`; None if it has none
        (a 1.6 transaction, or not this station's)."""
        row = self.conn.execute(
            "SELECT station_tx_id FROM station_transactions WHERE charger_id = ? AND transaction_id = ?",
            (charger_id, transaction_id)).fetchone()
        return row[0] if row else None

    def open_station_transaction(self, charger_id: str, station_tx_id: str, evse_id: int, meter_start: int,
                                 start_time: str, at: str) -> None:
        """The first event of a station's transaction: where and from which register it started."""
        self.conn.execute(
            """INSERT INTO station_transactions (charger_id, station_tx_id, evse_id, meter_start, start_time,
                                                 created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (charger_id, station_tx_id, evse_id, meter_start, start_time, at))

    def map_station_transaction(self, charger_id: str, station_tx_id: str, transaction_id: int) -> None:
        self.conn.execute(
            "UPDATE station_transactions SET transaction_id = ? WHERE charger_id = ? AND station_tx_id = ?",
            (transaction_id, charger_id, station_tx_id))

    def transaction_event_seen(self, charger_id: str, station_tx_id: str, seq_no: int) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM station_transaction_events WHERE charger_id = ? AND station_tx_id = ? AND seq_no = ?",
            (charger_id, station_tx_id, seq_no)).fetchone() is not None

    def record_transaction_event(self, charger_id: str, station_tx_id: str, seq_no: int, event_type: str,
                                 offline: bool, at: str) -> None:
        """A TransactionEvent applied: its redelivery (same transactionId and seqNo) changes nothing."""
        self.conn.execute(
            """INSERT INTO station_transaction_events (charger_id, station_tx_id, seq_no, event_type, offline,
                                                       received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (charger_id, station_tx_id, seq_no, event_type, int(offline), at))
