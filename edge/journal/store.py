"""The journal's records: every SQL statement of the edge lives here.

A Store wraps one sqlite3 connection and is only ever used from the journal's
own thread (see journal.py). Its methods do not commit: the journal groups
them into transactions and commits before anyone is answered.
"""

from __future__ import annotations

import json
from decimal import Decimal
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable

from edge.journal.migrations import migrate


def _number(value: Any) -> Any:
    """JSON for what the ocpp library hands over as Decimal (charging schedule limits)."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (group commit).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on the disk (fsync) before we acknowledge anything to
    # a charger; NORMAL would lose the last transactions on a power cut.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    migrate(conn)
    return conn


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


# What a charge record was built from, as one text: the transaction's stop. A transaction corrected
# after its record was made (a late StopTransaction) no longer matches its record's `source`, so a
# revision that a lost event or a restart missed is still made. The two spellings (Python for the
# record kept, SQL for the check) must stay equal; tests/edge/test_journal.py holds them together.
_MARKED = ("meter_stop", "stop_time", "stop_reason", "edge_stop")
_MARK_SQL = " || '|' || ".join(f"coalesce(t.{column}, '')" for column in _MARKED)


def transaction_mark(tx: dict[str, Any]) -> str:
    return "|".join("" if tx[column] is None else str(tx[column]) for column in _MARKED)


class Store:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- chargers ---------------------------------------------------------

    def record_boot(self, charger_id: str, registration: str, info: dict[str, str | None], at: str) -> None:
        fields = ("vendor", "model", "serial_number", "firmware_version", "iccid", "imsi",
                  "meter_type", "meter_serial_number")
        values = [info.get(f) for f in fields]
        self.conn.execute(
            f"""INSERT INTO chargers (id, registration, first_seen, last_boot, last_seen, {", ".join(fields)})
                VALUES (?, ?, ?, ?, ?, {", ".join("?" * len(fields))})
                ON CONFLICT (id) DO UPDATE SET
                  registration = excluded.registration, last_boot = excluded.last_boot,
                  last_seen = excluded.last_seen,
                  {", ".join(f"{f} = excluded.{f}" for f in fields)}""",
            (charger_id, registration, at, at, at, *values),
        )

    def adopt_charger(self, charger_id: str, at: str) -> bool:
        cur = self.conn.execute(
            "UPDATE chargers SET registration = 'accepted', adopted_at = ? WHERE id = ? AND registration != 'accepted'",
            (at, charger_id),
        )
        return cur.rowcount == 1

    def adopted_chargers(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM chargers WHERE adopted_at IS NOT NULL")}

    def touch_chargers(self, last_seen: dict[str, str]) -> None:
        self.conn.executemany(
            "UPDATE chargers SET last_seen = ? WHERE id = ?", [(at, cid) for cid, at in last_seen.items()]
        )

    def ensure_charger(self, charger_id: str, at: str) -> None:
        # A configured charger that talks before (or without) a BootNotification
        # after our restart still needs a row, e.g. for its logs and connectors.
        self.conn.execute(
            "INSERT INTO chargers (id, registration, first_seen, last_seen) VALUES (?, 'accepted', ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (charger_id, at, at),
        )

    def record_firmware_status(self, charger_id: str, kind: str, status: str, at: str) -> None:
        column = {"firmware": "firmware_status", "diagnostics": "diagnostics_status"}[kind]
        self.conn.execute(
            f"UPDATE chargers SET {column} = ?, {column}_at = ? WHERE id = ?", (status, at, charger_id)
        )

    def chargers(self) -> list[dict[str, Any]]:
        return _rows(self.conn.execute("SELECT * FROM chargers ORDER BY id"))

    def connectors(self, charger_id: str | None = None) -> list[dict[str, Any]]:
        if charger_id is None:
            return _rows(self.conn.execute("SELECT * FROM connectors ORDER BY charger_id, connector_id"))
        return _rows(self.conn.execute(
            "SELECT * FROM connectors WHERE charger_id = ? ORDER BY connector_id", (charger_id,)))

    # -- status -------------------------------------------------------------

    def record_status(self, charger_id: str, connector_id: int, status: str, error_code: str,
                      info: str | None, vendor_id: str | None, vendor_error_code: str | None,
                      charger_time: str | None, at: str) -> None:
        self.conn.execute(
            """INSERT INTO connectors (charger_id, connector_id, status, error_code, info, vendor_id,
                                       vendor_error_code, charger_time, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (charger_id, connector_id) DO UPDATE SET
                 status = excluded.status, error_code = excluded.error_code, info = excluded.info,
                 vendor_id = excluded.vendor_id, vendor_error_code = excluded.vendor_error_code,
                 charger_time = excluded.charger_time, updated_at = excluded.updated_at""",
            (charger_id, connector_id, status, error_code, info, vendor_id, vendor_error_code, charger_time, at),
        )
        if error_code != "NoError" or status == "Faulted":
            self.conn.execute(
                """INSERT INTO hardware_log (at, charger_id, connector_id, status, error_code, info,
                                             vendor_id, vendor_error_code, charger_time)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (at, charger_id, connector_id, status, error_code, info, vendor_id, vendor_error_code, charger_time),
            )

    # -- transactions -------------------------------------------------------

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

    # -- meter values -------------------------------------------------------

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

    # -- authorization ----------------------------------------------------------

    def latest_auth_model(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM auth_model ORDER BY version DESC LIMIT 1").fetchone()
        return {**dict(row), "document": json.loads(row["document"])} if row else None

    def record_auth_model(self, version: int, document: dict, source: str, config_hash: str, actor: str,
                          note: str | None, at: str) -> None:
        self.conn.execute(
            "INSERT INTO auth_model (version, document, source, config_hash, actor, note, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, json.dumps(document, sort_keys=True), source, config_hash, actor, note, at))

    def auth_model_history(self, limit: int = 50) -> list[dict[str, Any]]:
        return _rows(self.conn.execute(
            "SELECT version, source, actor, note, at FROM auth_model ORDER BY version DESC LIMIT ?", (limit,)))

    def record_authorization(self, at: str, charger_id: str, connector_id: int | None, id_tag: str | None,
                             token: str | None, user_group: str | None, method: str, status: str, reason: str) -> None:
        self.conn.execute(
            """INSERT INTO authorizations (at, charger_id, connector_id, id_tag, token, user_group, method, status, reason)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (at, charger_id, connector_id, id_tag, token, user_group, method, status, reason))

    def authorizations(self, *, status: str | None = None, unknown_only: bool = False, charger_id: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
        clauses, args = [], []
        if status:
            clauses.append("status = ?")
            args.append(status)
        if unknown_only:
            clauses.append("token IS NULL AND id_tag IS NOT NULL")
        if charger_id:
            clauses.append("charger_id = ?")
            args.append(charger_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return _rows(self.conn.execute(f"SELECT * FROM authorizations {where} ORDER BY id DESC LIMIT ?", (*args, limit)))

    def last_used(self) -> dict[str, str]:
        """Canonical token -> when it was last accepted anywhere (for trimming long local lists)."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT token, max(at) FROM authorizations WHERE token IS NOT NULL AND status = 'Accepted' GROUP BY token")}

    def local_lists(self) -> dict[str, dict[str, Any]]:
        return {r["charger_id"]: {**dict(r), "entries": json.loads(r["entries"])}
                for r in self.conn.execute("SELECT * FROM local_lists")}

    def record_local_list(self, charger_id: str, version: int, entries: dict, status: str, detail: str | None,
                          at: str) -> None:
        self.conn.execute(
            """INSERT INTO local_lists (charger_id, version, entries, status, detail, at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (charger_id) DO UPDATE SET version = excluded.version, entries = excluded.entries,
                 status = excluded.status, detail = excluded.detail, at = excluded.at""",
            (charger_id, version, json.dumps(entries, sort_keys=True), status, detail, at))

    def flag_transaction(self, transaction_id: int, flag: str) -> None:
        self.conn.execute("UPDATE transactions SET flag = ? WHERE id = ?", (flag, transaction_id))

    # -- charge records (edge/cdr) ---------------------------------------------

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

    # -- uplink (edge/uplink): the outbox and what came down from the cloud -------------

    def uplink_recording(self, on: bool) -> int:
        """While on, the outbox triggers (migration 5) write a message in the same commit as what it
        reports. Switching on first feeds the records made while it was off (in the same transaction,
        so a record made meanwhile cannot move the cursor past them). -> records fed."""
        fed = self._outbox_feed_cdrs() if on else 0
        if on:
            self._outbox_feed_quarantine()
        self.conn.execute("UPDATE uplink_settings SET recording = ? WHERE id = 1", (int(on),))
        return fed

    def _outbox_feed_quarantine(self) -> None:
        """Records quarantined while the uplink did not record are reported now."""
        self.conn.execute(
            """INSERT INTO outbox (id, stream, type, at, body, size)
               SELECT lower(hex(randomblob(16))), 'alert', 'alert.cdr_quarantined', first_at, body,
                      length(CAST(body AS BLOB)) + 64
               FROM (SELECT first_at, json_object('transaction_id', transaction_id, 'charger_id', charger_id,
                                                  'error', error) AS body
                     FROM cdr_quarantine WHERE reported = 0 ORDER BY transaction_id)""")
        self.conn.execute("UPDATE cdr_quarantine SET reported = 1 WHERE reported = 0")

    def _outbox_feed_cdrs(self) -> int:
        """Records made while the uplink was off (or before it existed) join the outbox, by seq."""
        cur = self.conn.execute(
            """INSERT INTO outbox (id, stream, type, at, body, size)
               SELECT id, 'cdr', 'cdr', created_at, document, length(CAST(document AS BLOB)) + 64 FROM cdrs
               WHERE seq > (SELECT cdr_seq FROM uplink_settings WHERE id = 1) ORDER BY seq
               ON CONFLICT (id) DO NOTHING""")
        self.conn.execute("UPDATE uplink_settings SET cdr_seq = (SELECT coalesce(max(seq), 0) FROM cdrs) WHERE id = 1")
        return cur.rowcount

    def outbox_add(self, messages: list[tuple[str, str, str, str, str]]) -> None:
        """messages: (id, stream, type, at, body JSON)."""
        self.conn.executemany(
            "INSERT INTO outbox (id, stream, type, at, body, size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [(*m, len(m[4].encode()) + 64) for m in messages])

    def outbox_next(self, stream: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """The next undelivered messages of a stream after `after_seq`, oldest first. Messages that
        never were in a batch get their seq now (the caller publishes only after this commit)."""
        rows = _rows(self.conn.execute(
            "SELECT n, id, seq, type, at, body FROM outbox WHERE stream = ? AND seq > ? AND held IS NULL "
            "ORDER BY seq LIMIT ?", (stream, after_seq, limit)))
        if len(rows) < limit:
            fresh = _rows(self.conn.execute(
                "SELECT n, id, seq, type, at, body FROM outbox WHERE stream = ? AND seq IS NULL ORDER BY n LIMIT ?",
                (stream, limit - len(rows))))
            if fresh:
                last = self.conn.execute("SELECT last_seq FROM outbox_streams WHERE stream = ?", (stream,)).fetchone()[0]
                for offset, row in enumerate(fresh, start=1):
                    row["seq"] = last + offset
                self.conn.executemany("UPDATE outbox SET seq = ? WHERE n = ?", [(r["seq"], r["n"]) for r in fresh])
                self.conn.execute("UPDATE outbox_streams SET last_seq = ? WHERE stream = ?", (last + len(fresh), stream))
                rows += fresh
        return rows

    def outbox_delivered(self, stream: str, first_seq: int, last_seq: int, last_id: str | None, at: str) -> int:
        """The cloud has stored seqs first_seq..last_seq of `stream` (its receipt): they leave the
        outbox, except messages set aside in that range (not in what it stored). A receipt whose
        last_id is not the id of the message at last_seq here is not about this journal (a reinstalled
        site's old session) and changes nothing. -> messages removed."""
        if last_id is not None:
            row = self.conn.execute("SELECT id FROM outbox WHERE stream = ? AND seq = ?", (stream, last_seq)).fetchone()
            if row is not None and row[0] != last_id:
                return -1
        # A message set aside (held) inside the range was not in the batch the receipt is for: it stays.
        cur = self.conn.execute("DELETE FROM outbox WHERE stream = ? AND seq BETWEEN ? AND ? AND held IS NULL",
                                (stream, first_seq, last_seq))
        if cur.rowcount:
            self.conn.execute(
                "UPDATE outbox_streams SET delivered = delivered + ?, last_delivered_at = ? WHERE stream = ?",
                (cur.rowcount, at, stream))
        return cur.rowcount

    def outbox_hold(self, stream: str, seq: int, message_id: str, why: str) -> dict[str, Any] | None:
        """The cloud refused this one message alone: set it aside (kept, not sent) with the reason.
        -> the message (id, type, at, seq), or None when it is not here (any more) or already aside."""
        row = self.conn.execute("SELECT id, type, at FROM outbox WHERE stream = ? AND seq = ? AND id = ? "
                                "AND held IS NULL", (stream, seq, message_id)).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE outbox SET held = ? WHERE stream = ? AND seq = ?", (why, stream, seq))
        return {"id": row[0], "type": row[1], "at": row[2], "seq": seq}

    def outbox_release(self, stream: str | None = None) -> int:
        """Messages set aside go again (the cloud has been fixed). -> how many."""
        cur = self.conn.execute("UPDATE outbox SET held = NULL WHERE held IS NOT NULL AND (? IS NULL OR stream = ?)",
                                (stream, stream))
        return cur.rowcount

    def outbox_held(self, limit: int = 50) -> list[dict[str, Any]]:
        """Messages set aside (the first `limit`), oldest first per stream."""
        return _rows(self.conn.execute(
            "SELECT stream, seq, id, type, at, held AS why FROM outbox WHERE held IS NOT NULL ORDER BY stream, seq "
            "LIMIT ?", (limit,)))

    def outbox_backlog(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT stream, count(*) FROM outbox GROUP BY stream")}

    def outbox_streams(self) -> list[dict[str, Any]]:
        """Per stream: last seq given, delivered and dropped counts, last delivery, backlog and its oldest message."""
        return _rows(self.conn.execute(
            """SELECT s.stream, s.last_seq, s.delivered, s.last_delivered_at, s.dropped, count(o.n) AS backlog,
                      min(o.at) AS oldest_at, coalesce(sum(o.size), 0) AS backlog_bytes, count(o.held) AS held
               FROM outbox_streams s LEFT JOIN outbox o ON o.stream = s.stream GROUP BY s.stream ORDER BY s.stream"""))

    def outbox_size(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0]

    def outbox_thin(self, stream: str, max_level: int) -> tuple[int, str | None, str | None]:
        """Halve the resolution of a stream's messages that were never sent: every second one of
        those thinned fewer than `max_level` times goes. -> (removed, first at, last at)."""
        rows = self.conn.execute(
            "SELECT n, at FROM outbox WHERE stream = ? AND seq IS NULL AND level < ? ORDER BY n",
            (stream, max_level)).fetchall()
        gone = rows[1::2]
        self.conn.executemany("DELETE FROM outbox WHERE n = ?", [(r[0],) for r in gone])
        self.conn.executemany("UPDATE outbox SET level = level + 1 WHERE n = ?", [(r[0],) for r in rows[0::2]])
        self._count_dropped(stream, len(gone))
        return len(gone), (gone[0][1] if gone else None), (gone[-1][1] if gone else None)

    def outbox_drop_oldest(self, stream: str, free_bytes: int) -> tuple[int, str | None, str | None]:
        """Drop a stream's oldest never-sent messages, and those the cloud refused (set aside), until
        `free_bytes` are freed. -> (removed, first at, last at)."""
        freed, gone = 0, []
        for n, at, size in self.conn.execute(
                "SELECT n, at, size FROM outbox WHERE stream = ? AND (seq IS NULL OR held IS NOT NULL) ORDER BY n",
                (stream,)):
            if freed >= free_bytes:
                break
            gone.append((n, at))
            freed += size
        self.conn.executemany("DELETE FROM outbox WHERE n = ?", [(g[0],) for g in gone])
        self._count_dropped(stream, len(gone))
        return len(gone), (gone[0][1] if gone else None), (gone[-1][1] if gone else None)

    def outbox_remove(self, message_id: str) -> bool:
        """One message that can never be sent (larger than a payload may be)."""
        row = self.conn.execute("SELECT stream FROM outbox WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            return False
        self.conn.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
        self._count_dropped(row[0], 1)
        return True

    def _count_dropped(self, stream: str, count: int) -> None:
        if count:
            self.conn.execute("UPDATE outbox_streams SET dropped = dropped + ? WHERE stream = ?", (count, stream))

    def downlink_documents(self) -> dict[str, dict[str, Any]]:
        return {r["kind"]: {**dict(r), "document": json.loads(r["document"])}
                for r in self.conn.execute("SELECT * FROM downlink_documents")}

    def record_downlink_document(self, kind: str, version: int, message_id: str, mode: str, document: dict,
                                 config_hash: str, at: str) -> None:
        self.conn.execute(
            """INSERT INTO downlink_documents (kind, version, message_id, mode, document, config_hash, applied_at)
               VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE SET version = excluded.version,
                 message_id = excluded.message_id, mode = excluded.mode, document = excluded.document,
                 config_hash = excluded.config_hash, applied_at = excluded.applied_at""",
            (kind, version, message_id, mode, json.dumps(document, sort_keys=True), config_hash, at))

    def downlink_command(self, command_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM downlink_commands WHERE id = ?", (command_id,)).fetchone()
        return dict(row) if row else None

    def begin_downlink_command(self, command_id: str, at: str, charger_id: str, action: str,
                               forget_before: str | None = None) -> bool:
        """False when this command id was seen before (a redelivery): it must not run again.
        Ids received before `forget_before` are forgotten (no broker keeps a command that long)."""
        if forget_before is not None:
            self.conn.execute("DELETE FROM downlink_commands WHERE received_at < ?", (forget_before,))
        cur = self.conn.execute(
            "INSERT INTO downlink_commands (id, received_at, charger_id, action) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING", (command_id, at, charger_id, action))
        return cur.rowcount == 1

    def finish_downlink_command(self, command_id: str, ack: dict[str, Any]) -> None:
        self.conn.execute("UPDATE downlink_commands SET ack = ? WHERE id = ?", (json.dumps(ack), command_id))

    def record_downlink(self, at: str, kind: str, message_id: str, version: int | None, status: str,
                        error: str | None) -> None:
        self.conn.execute(
            "INSERT INTO downlink_log (at, kind, message_id, version, status, error) VALUES (?, ?, ?, ?, ?, ?)",
            (at, kind, message_id, version, status, error))
        # Bounded: the newest 10,000 outcomes are plenty to look back on.
        self.conn.execute("DELETE FROM downlink_log WHERE n <= (SELECT max(n) FROM downlink_log) - 10000")

    def downlink_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return _rows(self.conn.execute("SELECT * FROM downlink_log ORDER BY n DESC LIMIT ?", (limit,)))

    # -- logs ---------------------------------------------------------------

    def record_action(self, at: str, charger_id: str, actor: str, action: str, request: dict,
                      reason: str, outcome: str, response: Any) -> int:
        cur = self.conn.execute(
            """INSERT INTO actions_log (at, charger_id, actor, action, request, reason, outcome, response)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (at, charger_id, actor, action, json.dumps(request, default=_number), reason, outcome,
             response if isinstance(response, str) or response is None else json.dumps(response, default=_number)),
        )
        return cur.lastrowid

    def record_network(self, at: str, charger_id: str, status: str, event: str, detail: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO network_log (at, charger_id, status, event, detail) VALUES (?, ?, ?, ?, ?)",
            (at, charger_id, status, event, detail),
        )

    def record_frames(self, frames: list[tuple[str, str, str, str]], keep_per_charger: int) -> None:
        """frames: (at, charger_id, direction, text). Trims each charger's log
        to its newest `keep_per_charger` frames, so the log stays bounded."""
        self.conn.executemany(
            "INSERT INTO communication_log (at, charger_id, direction, frame) VALUES (?, ?, ?, ?)", frames)
        for charger_id in {f[1] for f in frames}:
            self.conn.execute(
                """DELETE FROM communication_log WHERE charger_id = ? AND id <= (
                     SELECT id FROM communication_log WHERE charger_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
                (charger_id, charger_id, keep_per_charger),
            )

    def record_data_transfer(self, at: str, charger_id: str, vendor_id: str, message_id: str | None,
                             data: str | None) -> None:
        self.conn.execute(
            "INSERT INTO data_transfers (at, charger_id, vendor_id, message_id, data) VALUES (?, ?, ?, ?, ?)",
            (at, charger_id, vendor_id, message_id, data),
        )

    def record_load_points(self, points: list[dict[str, Any]], prune_before: str) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO load_series (circuit, phase, at, metered_max, metered_mean, allocated, unmanaged,"
            " reserved, limit_a, failsafe) VALUES (:circuit, :phase, :at, :metered_max, :metered_mean, :allocated,"
            " :unmanaged, :reserved, :limit_a, :failsafe)", points)
        self.conn.execute("DELETE FROM load_series WHERE at < ?", (prune_before,))

    def load_series(self, *, circuit: str | None = None, since: str | None = None, until: str | None = None,
                    limit: int = 10_000) -> list[dict[str, Any]]:
        """Oldest first."""
        clauses, args = [], []
        for clause, value in (("circuit = ?", circuit), ("at >= ?", since), ("at <= ?", until)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return _rows(self.conn.execute(
            f"SELECT * FROM (SELECT * FROM load_series {where} ORDER BY at DESC, circuit, phase LIMIT ?)"
            " ORDER BY at, circuit, phase", (*args, limit)))

    def log(self, table: str, charger_id: str | None, limit: int = 100,
            before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first. `table`: actions | network | hardware | communication | data_transfers."""
        name = {"authorizations": "authorizations", "actions": "actions_log", "network": "network_log", "hardware": "hardware_log",
                "communication": "communication_log", "data_transfers": "data_transfers"}[table]
        clauses, args = [], []
        if charger_id is not None:
            clauses.append("charger_id = ?")
            args.append(charger_id)
        if before_id is not None:
            clauses.append("id < ?")
            args.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return _rows(self.conn.execute(f"SELECT * FROM {name} {where} ORDER BY id DESC LIMIT ?", (*args, limit)))


def _cdr_row(row: sqlite3.Row) -> dict[str, Any]:
    """A record as kept: the columns say its revision (documents from before revisions lack it)."""
    return {**json.loads(row["document"]), "seq": row["seq"], "revision": row["revision"],
            "supersedes": row["supersedes"], "superseded_by": row["superseded_by"]}
