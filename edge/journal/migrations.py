"""Versioned schema migrations for the journal.

Each entry moves the schema from version i to i+1 and runs in the same
transaction as the bump of PRAGMA user_version, so a power cut mid-upgrade
leaves the old schema intact. Never edit a released migration: add one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the OCPP foundation.
    """
    CREATE TABLE chargers (
        id               TEXT PRIMARY KEY,
        registration     TEXT NOT NULL,          -- accepted | pending | rejected
        adopted_at       TEXT,                   -- set when an installer adopted a pending charger
        vendor           TEXT, model TEXT, serial_number TEXT, firmware_version TEXT,
        iccid TEXT, imsi TEXT, meter_type TEXT, meter_serial_number TEXT,
        first_seen       TEXT NOT NULL,
        last_boot        TEXT,
        last_seen        TEXT,
        firmware_status  TEXT, firmware_status_at TEXT,
        diagnostics_status TEXT, diagnostics_status_at TEXT
    );
    CREATE TABLE connectors (
        charger_id       TEXT NOT NULL,
        connector_id     INTEGER NOT NULL,       -- 0 is the charge point itself
        status           TEXT NOT NULL,
        error_code       TEXT NOT NULL,
        info             TEXT, vendor_id TEXT, vendor_error_code TEXT,
        charger_time     TEXT,                   -- the charger's timestamp, if it sent one
        updated_at       TEXT NOT NULL,
        PRIMARY KEY (charger_id, connector_id)
    );
    -- AUTOINCREMENT: an id is never handed out twice, not even after the row
    -- with the highest id is gone, so chargers never see a reused transactionId.
    CREATE TABLE transactions (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id       TEXT NOT NULL,
        connector_id     INTEGER NOT NULL,
        id_tag           TEXT NOT NULL,
        auth_status      TEXT NOT NULL,
        reservation_id   INTEGER,
        meter_start      INTEGER NOT NULL,
        start_time       TEXT NOT NULL,          -- charger time
        start_received_at TEXT NOT NULL,        -- edge time
        meter_stop       INTEGER,
        stop_time        TEXT,
        stop_received_at TEXT,
        stop_reason      TEXT,
        stop_id_tag      TEXT,
        state            TEXT NOT NULL DEFAULT 'active',   -- active | completed
        -- a charger retrying StartTransaction after a lost answer sends the
        -- same content again: it must get the same id back, not a second session
        UNIQUE (charger_id, connector_id, id_tag, start_time, meter_start)
    );
    CREATE INDEX transactions_by_charger ON transactions (charger_id, state);
    -- A StopTransaction for a transaction we never saw (including id -1 from a
    -- charger that lost its state): kept, never dropped, never answered with an error.
    CREATE TABLE unmatched_stops (
        id               INTEGER PRIMARY KEY,
        charger_id       TEXT NOT NULL,
        charger_transaction_id INTEGER NOT NULL,
        id_tag           TEXT,
        meter_stop       INTEGER NOT NULL,
        stop_time        TEXT NOT NULL,
        stop_reason      TEXT,
        received_at      TEXT NOT NULL,
        UNIQUE (charger_id, charger_transaction_id, stop_time, meter_stop)
    );
    CREATE TABLE meter_samples (
        id               INTEGER PRIMARY KEY,
        charger_id       TEXT NOT NULL,
        connector_id     INTEGER NOT NULL,
        transaction_id   INTEGER,               -- our id; NULL for samples outside a session
        timestamp        TEXT NOT NULL,
        measurand        TEXT NOT NULL,
        phase            TEXT,
        value            REAL NOT NULL,
        unit             TEXT,
        context          TEXT,
        location         TEXT,
        received_at      TEXT NOT NULL
    );
    CREATE INDEX meter_samples_by_transaction ON meter_samples (transaction_id, timestamp);
    CREATE INDEX meter_samples_by_connector ON meter_samples (charger_id, connector_id, id);
    CREATE TABLE actions_log (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        actor            TEXT NOT NULL,
        action           TEXT NOT NULL,
        request          TEXT NOT NULL,          -- JSON
        reason           TEXT NOT NULL,
        outcome          TEXT NOT NULL,          -- ok | rejected | error | timeout | not-connected
        response         TEXT                    -- JSON or error text
    );
    CREATE INDEX actions_by_charger ON actions_log (charger_id, id);
    CREATE TABLE network_log (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        status           TEXT NOT NULL,          -- Available | TemporarilyUnavailable | LongTermUnavailable
        event            TEXT NOT NULL,
        detail           TEXT
    );
    CREATE INDEX network_by_charger ON network_log (charger_id, id);
    CREATE TABLE hardware_log (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        connector_id     INTEGER NOT NULL,
        status           TEXT NOT NULL,
        error_code       TEXT NOT NULL,
        info             TEXT, vendor_id TEXT, vendor_error_code TEXT,
        charger_time     TEXT
    );
    CREATE INDEX hardware_by_charger ON hardware_log (charger_id, id);
    CREATE TABLE communication_log (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        direction        TEXT NOT NULL,          -- in | out | note
        frame            TEXT NOT NULL
    );
    CREATE INDEX communication_by_charger ON communication_log (charger_id, id);
    CREATE TABLE data_transfers (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        vendor_id        TEXT NOT NULL,
        message_id       TEXT,
        data             TEXT
    );
    """,
    # 2: local authorization: model versions, authorization records, local lists.
    """
    CREATE TABLE auth_model (
        version          INTEGER PRIMARY KEY,
        document         TEXT NOT NULL,          -- JSON: user_groups, charge_groups, tokens, default_policy
        source           TEXT NOT NULL,          -- config | api | cloud
        config_hash      TEXT NOT NULL,          -- hash of the config's auth tables this version started from
        actor            TEXT NOT NULL,
        note             TEXT,
        at               TEXT NOT NULL
    );
    CREATE TABLE authorizations (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        charger_id       TEXT NOT NULL,
        connector_id     INTEGER,
        id_tag           TEXT,                   -- as presented; NULL for free vend
        token            TEXT,                   -- the canonical token it matched, if any
        user_group       TEXT,
        method           TEXT NOT NULL,          -- rfid | remote | free-vend | start | stop
        status           TEXT NOT NULL,
        reason           TEXT NOT NULL
    );
    CREATE INDEX authorizations_by_tag ON authorizations (id_tag, id);
    CREATE INDEX authorizations_by_status ON authorizations (status, id);
    CREATE TABLE local_lists (
        charger_id       TEXT PRIMARY KEY,
        version          INTEGER NOT NULL,       -- the list version the charger holds (as we sent it)
        entries          TEXT NOT NULL,          -- JSON of what the charger holds: {idTag: idTagInfo}
        status           TEXT NOT NULL,          -- in-sync | truncated | unsupported | failed
        detail           TEXT,
        at               TEXT NOT NULL
    );
    ALTER TABLE transactions ADD COLUMN user_group TEXT;
    ALTER TABLE transactions ADD COLUMN flag TEXT;    -- why this record needs a look (e.g. late start of a blocked token)
    """,
    # 3: load management: the per-phase current of each circuit against its limit, downsampled.
    """
    CREATE TABLE load_series (
        circuit          TEXT NOT NULL,
        phase            INTEGER NOT NULL,       -- 1, 2, 3 (site L1..L3)
        at               TEXT NOT NULL,          -- end of the interval
        metered_max      REAL,                   -- highest metered current in the interval; NULL: no meter / lost
        metered_mean     REAL,
        allocated        REAL NOT NULL,          -- to managed chargers, at the end of the interval
        unmanaged        REAL NOT NULL,
        reserved         REAL NOT NULL,
        limit_a          REAL NOT NULL,
        failsafe         INTEGER NOT NULL,       -- 1 when the circuit was in failsafe during the interval
        PRIMARY KEY (circuit, at, phase)
    );
    """,
    # 4: charge detail records, and why the edge stopped or closed a transaction.
    """
    CREATE TABLE cdrs (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order, for the uplink to page by
        id               TEXT NOT NULL UNIQUE,   -- UUID (name-based: site + session), safe to merge across sites
        transaction_id   INTEGER UNIQUE,         -- NULL for a start that never happened (status Failed)
        charger_id       TEXT NOT NULL,
        user_group       TEXT,
        status           TEXT NOT NULL,          -- Successful | Error | Exclusion | Failed
        start_time       TEXT NOT NULL,          -- UTC ISO 8601, for date ranges
        session_key      TEXT,                   -- charger, connector, start, stop, meter readings: finds duplicates
        created_at       TEXT NOT NULL,
        document         TEXT NOT NULL           -- the whole record as JSON
    );
    CREATE INDEX cdrs_by_start ON cdrs (start_time);
    CREATE INDEX cdrs_by_session ON cdrs (session_key);
    ALTER TABLE transactions ADD COLUMN edge_stop TEXT;   -- why the edge stopped or closed it (limit, inactivity, reboot)
    """,
]


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: list[str] = MIGRATIONS) -> int:
    """Bring the schema up to date; returns the version reached.

    Refuses a journal written by a newer release: running old code on a newer
    schema could silently drop columns it does not know.
    """
    current = schema_version(conn)
    if current > len(migrations):
        raise RuntimeError(
            f"journal schema version {current} is newer than this software "
            f"understands ({len(migrations)}); upgrade the software, do not downgrade"
        )
    for version in range(current, len(migrations)):
        # executescript would COMMIT first; run statement by statement inside
        # one explicit transaction instead, so the bump and the DDL land together.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(migrations)


def _statements(script: str) -> list[str]:
    # Split at each ';' that sqlite itself says ends a statement, so semicolons
    # inside comments or strings do not cut one.
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_sql(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_sql(buffer.removesuffix(";")):
        statements.append(buffer.removesuffix(";").strip())
    return statements


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.rstrip(";").splitlines())
