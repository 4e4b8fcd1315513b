"""The journal's charge records (edge/cdr): records and their revisions, the quarantine of
records that could not be made, and the tariff a session was pinned to.

cdr_source reads a transaction with its samples and signed values (rows of other domains) for
building a record; writes to a transaction (its flag, the edge's stop) are in transactions.py.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.journal.base import StoreBase, _rows


# What a charge record was built from, as one text: the transaction's stop. A transaction corrected
# after its record was made (a late StopTransaction) no longer matches its record's `source`, so a
# revision that a lost event or a restart missed is still made. The two spellings (Python for the
# record kept, SQL for the check) must stay equal; tests/edge/test_journal.py holds them together.
_MARKED = ("meter_stop", "stop_time", "stop_reason", "edge_stop")
_MARK_SQL = " || '|' || ".join(f"coalesce(t.{column}, '')" for column in _MARKED)


def transaction_mark(tx: dict[str, Any]) -> str:
    return "|".join("" if tx[column] is None else str(tx[column]) for column in _MARKED)


def _cdr_row(row: sqlite3.Row) -> dict[str, Any]:
    """A record as kept: the columns say its revision (documents from before revisions lack it)."""
    return {**json.loads(row["document"]), "seq": row["seq"], "revision": row["revision"],
            "supersedes": row["supersedes"], "superseded_by": row["superseded_by"]}


class CdrStore(StoreBase):
    def cdr_source(self, transaction_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """A transaction and its energy and power samples in arrival order."""
        row = self.conn.execute("SELECT * FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
        samples = _rows(self.conn.execute(
            """SELECT timestamp, measurand, phase, value, unit, context, location, received_at FROM meter_samples
               WHERE transaction_id = ? AND measurand IN ('Energy.Active.Import.Register', 'Power.Active.Import')
               ORDER BY id""", (transaction_id,)))
        if row is None:
            return None, samples
        tx = dict(row)
        # Signed meter values (OCMF, EDL) and the charger's meter key, for the record's signed_data (issue 17).
        tx["signed_values"] = _rows(self.conn.execute(
            """SELECT timestamp, context, measurand, encoding, signed_data FROM signed_meter_values
               WHERE transaction_id = ? ORDER BY id""", (transaction_id,)))
        key = self.conn.execute("SELECT public_key FROM meter_public_keys WHERE charger_id = ?",
                                (tx["charger_id"],)).fetchone()
        tx["meter_public_key"] = key[0] if key else None
        return tx, samples

    def completed_without_cdr(self) -> list[int]:
        """Completed transactions without a record, the quarantined ones included."""
        return [r[0] for r in self.conn.execute(
            """SELECT t.id FROM transactions t LEFT JOIN cdrs c ON c.transaction_id = t.id
               WHERE t.state = 'completed' AND c.id IS NULL ORDER BY t.id""")]

    def record_cdr(self, document: dict[str, Any], session_key: str | None, source: str | None = None) -> bool:
        """False when the record (same id, or transaction and revision) is already there, or when the
        record a revision supersedes is no longer the latest (another revision came first). A record
        made at last leaves the quarantine in the same commit."""
        supersedes = document.get("supersedes")
        if supersedes is not None and self.conn.execute(
                "UPDATE cdrs SET superseded_by = ? WHERE id = ? AND superseded_by IS NULL",
                (document["id"], supersedes)).rowcount != 1:
            return False
        cur = self.conn.execute(
            """INSERT INTO cdrs (id, transaction_id, revision, supersedes, charger_id, user_group, status, start_time,
                                 session_key, source, created_at, document)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (document["id"], document["transaction_id"], document.get("revision", 1), supersedes,
             document["charger_id"], document["user_group"], document["status"], document["start_time"], session_key,
             source, document["created_at"], json.dumps(document, sort_keys=True)))
        if document["transaction_id"] is not None:
            self.conn.execute("DELETE FROM cdr_quarantine WHERE transaction_id = ?", (document["transaction_id"],))
        return cur.rowcount == 1

    def quarantine_cdr(self, transaction_id: int, error: str, at: str, why: str | None = None) -> str:
        """The record (or with `why`: the revision asked for that reason) of this transaction could not
        be made: keep why (the first time, the insert's trigger reports it to the cloud).
        -> new | again | made (a first record exists after all: nothing kept)."""
        if why is None and self.conn.execute("SELECT 1 FROM cdrs WHERE transaction_id = ?", (transaction_id,)
                                             ).fetchone():
            return "made"
        cur = self.conn.execute(
            """UPDATE cdr_quarantine SET error = ?, last_at = ?, attempts = attempts + 1, why = coalesce(?, why)
               WHERE transaction_id = ?""", (error, at, why, transaction_id))
        if cur.rowcount:
            return "again"
        self.conn.execute(
            """INSERT INTO cdr_quarantine (transaction_id, charger_id, error, first_at, last_at, why)
               SELECT ?, coalesce((SELECT charger_id FROM transactions WHERE id = ?), ''), ?, ?, ?, ?""",
            (transaction_id, transaction_id, error, at, at, why))
        return "new"

    def cdr_quarantine(self, transaction_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Quarantined records with what their transaction says, oldest first."""
        return _rows(self.conn.execute(
            """SELECT q.transaction_id, q.charger_id, t.connector_id, t.id_tag, t.start_time, t.stop_time,
                      t.meter_start, t.meter_stop, q.error, q.first_at, q.last_at, q.attempts, q.why
               FROM cdr_quarantine q LEFT JOIN transactions t ON t.id = q.transaction_id
               WHERE ? IS NULL OR q.transaction_id = ? ORDER BY q.transaction_id LIMIT ?""",
            (transaction_id, transaction_id, limit)))

    def pin_tariff(self, transaction_id: int, book_version: str, tariff_group: str | None, tariff: dict[str, Any],
                   at: str) -> bool:
        """Keep the tariff a session started under; the first pin stays (False when one was there)."""
        cur = self.conn.execute(
            """INSERT INTO transaction_tariffs (transaction_id, book_version, tariff_group, tariff, pinned_at)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (transaction_id, book_version, tariff_group, json.dumps(tariff, sort_keys=True), at))
        return cur.rowcount == 1

    def pinned_tariff(self, transaction_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM transaction_tariffs WHERE transaction_id = ?",
                                (transaction_id,)).fetchone()
        return {**dict(row), "tariff": json.loads(row["tariff"])} if row else None

    def cdr_with_session_key(self, session_key: str, transaction_id: int) -> str | None:
        row = self.conn.execute("SELECT id FROM cdrs WHERE session_key = ? AND transaction_id != ? ORDER BY seq",
                                (session_key, transaction_id)).fetchone()
        return row[0] if row else None

    def cdrs(self, *, since: str | None = None, until: str | None = None, charger_id: str | None = None,
             user_group: str | None = None, status: str | None = None, cdr_id: str | None = None,
             after_seq: int | None = None, limit: int = 100_000, newest_first: bool = False,
             all_revisions: bool = False) -> list[dict[str, Any]]:
        """Records (their documents, plus `seq`, `revision`, `supersedes`, `superseded_by`), by start time;
        since/until: UTC ISO start times. Only the latest revision of each transaction, unless
        `all_revisions` or one record is asked for by id."""
        clauses, args = [], []
        for clause, value in (("start_time >= ?", since), ("start_time < ?", until), ("charger_id = ?", charger_id),
                              ("user_group = ?", user_group), ("status = ?", status), ("id = ?", cdr_id),
                              ("seq > ?", after_seq)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        if not all_revisions and cdr_id is None:
            clauses.append("superseded_by IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_cdr_row(r) for r in self.conn.execute(
            f"SELECT seq, revision, supersedes, superseded_by, document FROM cdrs {where} "
            f"ORDER BY start_time {'DESC' if newest_first else ''}, seq LIMIT ?", (*args, limit))]

    def latest_cdr(self, transaction_id: int) -> dict[str, Any] | None:
        """The latest record of a transaction (its document, plus `seq`, `revision`, ..., and `source`)."""
        row = self.conn.execute(
            """SELECT seq, revision, supersedes, superseded_by, document, source FROM cdrs
               WHERE transaction_id = ? AND superseded_by IS NULL""", (transaction_id,)).fetchone()
        return {**_cdr_row(row), "source": row["source"]} if row else None

    def cdr_revisions(self, cdr_id: str) -> list[dict[str, Any]]:
        """Every record of the transaction of record `cdr_id`, first to latest; [] for an unknown id."""
        return [_cdr_row(r) for r in self.conn.execute(
            """SELECT c.seq, c.revision, c.supersedes, c.superseded_by, c.document FROM cdrs one
               JOIN cdrs c ON c.id = one.id OR c.transaction_id = one.transaction_id
               WHERE one.id = ? ORDER BY c.revision, c.seq""", (cdr_id,))]

    def cdrs_out_of_date(self) -> list[int]:
        """Transactions changed after their latest record was made (see transaction_mark); records
        from before revisions existed (no source) are taken as they are."""
        return [r[0] for r in self.conn.execute(
            f"""SELECT t.id FROM cdrs c JOIN transactions t ON t.id = c.transaction_id
                WHERE c.superseded_by IS NULL AND c.source IS NOT NULL AND t.state = 'completed'
                  AND c.source != {_MARK_SQL} ORDER BY t.id""")]
