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
    # 5: the uplink: the outbox (fed by triggers in the same commit as what it reports), and the
    # configuration documents and commands received from the cloud.
    """
    -- One row. recording: 1 while [uplink] is enabled (the triggers below write only then);
    -- cdr_seq: the last cdrs.seq put in the outbox, so records made while it was off follow later.
    CREATE TABLE uplink_settings (
        id               INTEGER PRIMARY KEY CHECK (id = 1),
        recording        INTEGER NOT NULL DEFAULT 0,
        cdr_seq          INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO uplink_settings (id, recording, cdr_seq) VALUES (1, 0, 0);
    CREATE TABLE outbox (
        n                INTEGER PRIMARY KEY AUTOINCREMENT,   -- enqueue order
        id               TEXT NOT NULL UNIQUE,   -- the message id: stable across redeliveries
        stream           TEXT NOT NULL,          -- cdr | session | status | alert | telemetry
        seq              INTEGER,                -- per stream, no gaps; given when first put in a batch
        type             TEXT NOT NULL,
        at               TEXT NOT NULL,
        body             TEXT NOT NULL,          -- JSON object
        size             INTEGER NOT NULL,       -- bytes counted against the disk budget
        level            INTEGER NOT NULL DEFAULT 0,   -- thinning passes survived (telemetry)
        UNIQUE (stream, seq)
    );
    CREATE INDEX outbox_by_stream ON outbox (stream, n);
    -- Delivered messages leave the outbox; what is left of them is counted here.
    CREATE TABLE outbox_streams (
        stream           TEXT PRIMARY KEY,
        last_seq         INTEGER NOT NULL DEFAULT 0,
        delivered        INTEGER NOT NULL DEFAULT 0,
        last_delivered_at TEXT,
        dropped          INTEGER NOT NULL DEFAULT 0   -- removed for the disk budget (never cdr, session)
    );
    INSERT INTO outbox_streams (stream) VALUES ('cdr'), ('session'), ('status'), ('alert'), ('telemetry');
    CREATE TRIGGER outbox_cdr AFTER INSERT ON cdrs
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        VALUES (NEW.id, 'cdr', 'cdr', NEW.created_at, NEW.document, length(CAST(NEW.document AS BLOB)) + 64);
        UPDATE uplink_settings SET cdr_seq = max(cdr_seq, NEW.seq) WHERE id = 1;
    END;
    CREATE TRIGGER outbox_session_started AFTER INSERT ON transactions
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'session', 'session.started', NEW.start_received_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'transaction_id', NEW.id, 'charger_id', NEW.charger_id, 'connector_id', NEW.connector_id,
            'id_tag', NEW.id_tag, 'auth_status', NEW.auth_status, 'user_group', NEW.user_group,
            'meter_start', NEW.meter_start, 'start_time', NEW.start_time, 'reservation_id', NEW.reservation_id,
            'flag', NEW.flag, 'received_at', NEW.start_received_at) AS body) AS b;
    END;
    CREATE TRIGGER outbox_session_stopped AFTER UPDATE OF state ON transactions
    WHEN OLD.state = 'active' AND NEW.state = 'completed'
         AND (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'session', 'session.stopped', NEW.stop_received_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'transaction_id', NEW.id, 'charger_id', NEW.charger_id, 'connector_id', NEW.connector_id,
            'id_tag', NEW.id_tag, 'user_group', NEW.user_group, 'meter_start', NEW.meter_start,
            'meter_stop', NEW.meter_stop, 'energy_wh', NEW.meter_stop - NEW.meter_start,
            'start_time', NEW.start_time, 'stop_time', NEW.stop_time, 'stop_reason', NEW.stop_reason,
            'stop_id_tag', NEW.stop_id_tag, 'edge_stop', NEW.edge_stop, 'received_at', NEW.stop_received_at)
            AS body) AS b;
    END;
    CREATE TRIGGER outbox_unmatched_stop AFTER INSERT ON unmatched_stops
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'session', 'session.unmatched_stop', NEW.received_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.charger_id, 'charger_transaction_id', NEW.charger_transaction_id,
            'id_tag', NEW.id_tag, 'meter_stop', NEW.meter_stop, 'stop_time', NEW.stop_time,
            'stop_reason', NEW.stop_reason, 'received_at', NEW.received_at) AS body) AS b;
    END;
    CREATE TRIGGER outbox_status_new AFTER INSERT ON connectors
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'status', 'connector.status', NEW.updated_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.charger_id, 'connector_id', NEW.connector_id, 'status', NEW.status,
            'error_code', NEW.error_code, 'info', NEW.info, 'vendor_id', NEW.vendor_id,
            'vendor_error_code', NEW.vendor_error_code, 'charger_time', NEW.charger_time) AS body) AS b;
    END;
    CREATE TRIGGER outbox_status_changed AFTER UPDATE ON connectors
    WHEN (OLD.status IS NOT NEW.status OR OLD.error_code IS NOT NEW.error_code)
         AND (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'status', 'connector.status', NEW.updated_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.charger_id, 'connector_id', NEW.connector_id, 'status', NEW.status,
            'error_code', NEW.error_code, 'info', NEW.info, 'vendor_id', NEW.vendor_id,
            'vendor_error_code', NEW.vendor_error_code, 'charger_time', NEW.charger_time) AS body) AS b;
    END;
    CREATE TRIGGER outbox_presence AFTER INSERT ON network_log
    WHEN NEW.event = 'status' AND (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'status', 'charger.presence', NEW.at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object('charger_id', NEW.charger_id, 'status', NEW.status, 'why', NEW.detail) AS body) AS b;
    END;
    CREATE TRIGGER outbox_boot_new AFTER INSERT ON chargers
    WHEN NEW.last_boot IS NOT NULL AND (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'status', 'charger.booted', NEW.last_boot, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.id, 'registration', NEW.registration, 'vendor', NEW.vendor, 'model', NEW.model,
            'serial_number', NEW.serial_number, 'firmware_version', NEW.firmware_version) AS body) AS b;
    END;
    CREATE TRIGGER outbox_boot AFTER UPDATE OF last_boot ON chargers
    WHEN NEW.last_boot IS NOT OLD.last_boot AND (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'status', 'charger.booted', NEW.last_boot, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.id, 'registration', NEW.registration, 'vendor', NEW.vendor, 'model', NEW.model,
            'serial_number', NEW.serial_number, 'firmware_version', NEW.firmware_version) AS body) AS b;
    END;
    CREATE TRIGGER outbox_fault AFTER INSERT ON hardware_log
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'alert', 'alert.fault', NEW.at, b.body, length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object(
            'charger_id', NEW.charger_id, 'connector_id', NEW.connector_id, 'status', NEW.status,
            'error_code', NEW.error_code, 'info', NEW.info, 'vendor_id', NEW.vendor_id,
            'vendor_error_code', NEW.vendor_error_code, 'charger_time', NEW.charger_time) AS body) AS b;
    END;
    -- Configuration documents from the cloud: the version in force per kind.
    CREATE TABLE downlink_documents (
        kind             TEXT PRIMARY KEY,       -- auth | tariffs | limits
        version          INTEGER NOT NULL,
        message_id       TEXT NOT NULL,
        mode             TEXT NOT NULL,          -- full | diff
        document         TEXT NOT NULL,          -- JSON, as received
        config_hash      TEXT NOT NULL,          -- the site config's tables it replaced (a later edit wins)
        applied_at       TEXT NOT NULL
    );
    -- Commands from the cloud, so a redelivered one is not run twice; ack: the answer sent (JSON).
    CREATE TABLE downlink_commands (
        id               TEXT PRIMARY KEY,
        received_at      TEXT NOT NULL,
        charger_id       TEXT,
        action           TEXT,
        ack              TEXT                    -- NULL while it runs
    );
    -- Every downlink message and what became of it (newest last).
    CREATE TABLE downlink_log (
        n                INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        kind             TEXT NOT NULL,
        message_id       TEXT NOT NULL,
        version          INTEGER,
        status           TEXT NOT NULL,          -- applied | ignored | rejected | done | failed
        error            TEXT
    );
    """,
    # 6: a message the cloud refused on its own (its receipt said rejected) is set aside: kept, not
    # sent again until someone releases it, so the rest of its stream can pass.
    """
    ALTER TABLE outbox ADD COLUMN held TEXT;   -- NULL, or why the cloud refused it
    """,
    # 7: a completed transaction whose charge record could not be made (building or pricing it
    # failed) is quarantined: the transaction stays as it is, the failure is kept here, reported to
    # the cloud, shown by edgectl, and the record is tried again (restart, tariff change, edgectl cdrs
    # retry). It never stops the edge nor holds up the other records.
    """
    CREATE TABLE cdr_quarantine (
        transaction_id   INTEGER PRIMARY KEY,
        charger_id       TEXT NOT NULL,
        error            TEXT NOT NULL,          -- the latest failure (type: message), bounded in length
        first_at         TEXT NOT NULL,
        last_at          TEXT NOT NULL,          -- the latest attempt
        attempts         INTEGER NOT NULL DEFAULT 1,
        reported         INTEGER NOT NULL DEFAULT 0   -- 1 once its alert is in the outbox
    );
    -- Quarantined while the uplink was off (or before it started recording): reported when it does
    -- (Store.uplink_recording), as records made meanwhile are.
    CREATE TRIGGER outbox_cdr_quarantined AFTER INSERT ON cdr_quarantine
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        SELECT lower(hex(randomblob(16))), 'alert', 'alert.cdr_quarantined', NEW.first_at, b.body,
               length(CAST(b.body AS BLOB)) + 64
        FROM (SELECT json_object('transaction_id', NEW.transaction_id, 'charger_id', NEW.charger_id,
                                 'error', NEW.error) AS body) AS b;
        UPDATE cdr_quarantine SET reported = 1 WHERE transaction_id = NEW.transaction_id;
    END;
    """,
    # 8: revisions of charge records. A transaction corrected after its record was made (the
    # charger's real StopTransaction after the edge closed the session) gets a new record that
    # supersedes the old one; the old one is kept (credit and rebill, never a silent change). A
    # transaction may therefore have several records: the table is rebuilt without the UNIQUE on
    # transaction_id (SQLite cannot drop it), seqs kept so the uplink's cursor stays right.
    """
    CREATE TABLE cdrs_revised (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order, for the uplink to page by
        id               TEXT NOT NULL UNIQUE,   -- UUID (name-based: site + session + revision)
        transaction_id   INTEGER,                -- NULL for a start that never happened (status Failed)
        revision         INTEGER NOT NULL DEFAULT 1,
        supersedes       TEXT,                   -- the id of the record this one replaces (revision - 1)
        superseded_by    TEXT,                   -- NULL: the latest record of its transaction
        charger_id       TEXT NOT NULL,
        user_group       TEXT,
        status           TEXT NOT NULL,          -- Successful | Error | Exclusion | Failed
        start_time       TEXT NOT NULL,          -- UTC ISO 8601, for date ranges
        session_key      TEXT,                   -- charger, connector, start, stop, meter readings: finds duplicates
        source           TEXT,                   -- the transaction's stop as it was built from (Store.transaction_mark)
        created_at       TEXT NOT NULL,
        document         TEXT NOT NULL,          -- the whole record as JSON
        UNIQUE (transaction_id, revision)
    );
    INSERT INTO cdrs_revised (seq, id, transaction_id, charger_id, user_group, status, start_time, session_key,
                              created_at, document)
        SELECT seq, id, transaction_id, charger_id, user_group, status, start_time, session_key, created_at, document
        FROM cdrs ORDER BY seq;
    -- The next seq follows the old table's, even past a record that is gone.
    DELETE FROM sqlite_sequence WHERE name = 'cdrs_revised';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'cdrs_revised', seq FROM sqlite_sequence WHERE name = 'cdrs';
    DROP TABLE cdrs;
    ALTER TABLE cdrs_revised RENAME TO cdrs;
    CREATE INDEX cdrs_by_start ON cdrs (start_time);
    CREATE INDEX cdrs_by_session ON cdrs (session_key);
    CREATE UNIQUE INDEX cdrs_latest ON cdrs (transaction_id) WHERE superseded_by IS NULL;
    -- Dropped with the old table: the same trigger as migration 5.
    CREATE TRIGGER outbox_cdr AFTER INSERT ON cdrs
    WHEN (SELECT recording FROM uplink_settings WHERE id = 1) = 1
    BEGIN
        INSERT INTO outbox (id, stream, type, at, body, size)
        VALUES (NEW.id, 'cdr', 'cdr', NEW.created_at, NEW.document, length(CAST(NEW.document AS BLOB)) + 64);
        UPDATE uplink_settings SET cdr_seq = max(cdr_seq, NEW.seq) WHERE id = 1;
    END;
    -- A revision that could not be made is quarantined like a first record, with why it was asked for.
    ALTER TABLE cdr_quarantine ADD COLUMN why TEXT;
    """,
    # 9: charger keys the edge set (ChangeConfiguration AuthorizationKey), and where handshake refusals are found.
    # A charger with rows here is checked against them, not against its password_hash in the config: the
    # 'current' key (the one it logged in with last) and any 'new' ones it accepted but has not used yet. The
    # first login with a new key makes it current and drops the others (edge/ocpp/credentials.py).
    """
    CREATE TABLE charger_keys (
        charger_id       TEXT NOT NULL,
        key_hash         TEXT NOT NULL,          -- scrypt (edge/ocpp/security.py); '' = no password (profile 0)
        role             TEXT NOT NULL CHECK (role IN ('current', 'new')),
        origin           TEXT NOT NULL,          -- config | rotated
        answer           TEXT,                   -- a new key: Accepted | RebootRequired | unanswered
        action_id        INTEGER,                -- its ChangeConfiguration in the actions log
        at               TEXT NOT NULL,          -- stored at
        used_at          TEXT,                   -- a rotated key: the first login with it
        PRIMARY KEY (charger_id, key_hash)
    );
    CREATE INDEX network_refusals ON network_log (charger_id, id) WHERE event IN ('refused', 'auth-rejected');
    """,
    # 10: the tariff a session is priced with, pinned when it starts (edge/cdr/pins.py): a tariff
    # change while a car charges applies to the next session, not to this one.
    """
    CREATE TABLE transaction_tariffs (
        transaction_id   INTEGER PRIMARY KEY,    -- transactions.id
        book_version     TEXT NOT NULL,          -- the tariff book in force at the start (a hash of its content)
        tariff_group     TEXT,                   -- NULL: the EVSE was in no tariff group (free)
        tariff           TEXT NOT NULL,          -- the selected tariff as JSON (a snapshot, whatever changes later)
        pinned_at        TEXT NOT NULL           -- edge time
    );
    """,
    # 11: a connector's truth (edge/sessions/connector.py): what a charger was answered at the start and
    # whether a refused start turned out to run; who ended a transaction; the charger's own stop or late
    # values correcting a close by the edge, with the stop as it was before kept as history.
    """
    ALTER TABLE transactions ADD COLUMN answered_status TEXT;  -- idTagInfo status the charger got (NULL: auth_status)
    ALTER TABLE transactions ADD COLUMN proven_running TEXT;   -- why a refused start is known to run (NULL: it is not)
    ALTER TABLE transactions ADD COLUMN closed_by TEXT;        -- charger | edge (NULL: not ended)
    ALTER TABLE transactions ADD COLUMN corrected TEXT;        -- the latest correction of the edge's close, for the CDR
    UPDATE transactions SET closed_by = CASE WHEN edge_stop IS NOT NULL AND stop_reason = 'Other'
                                                  AND stop_id_tag IS NULL THEN 'edge' ELSE 'charger' END
    WHERE state = 'completed';
    CREATE TABLE transaction_corrections (
        id                      INTEGER PRIMARY KEY AUTOINCREMENT,
        transaction_id          INTEGER NOT NULL,
        why                     TEXT NOT NULL,   -- late StopTransaction | late MeterValues
        at                      TEXT NOT NULL,   -- edge time
        meter_stop_before       INTEGER,         -- the stop as it was (the edge's close, or an earlier correction)
        stop_time_before        TEXT,
        stop_reason_before      TEXT,
        stop_received_at_before TEXT,
        meter_stop              INTEGER,         -- the stop as the charger's data has it
        stop_time               TEXT,
        stop_reason             TEXT
    );
    CREATE INDEX transaction_corrections_by_tx ON transaction_corrections (transaction_id, id);
    """,
    # 12: OCPP security (issue 17, edge/ocpp/tls.py, security_events.py): how each charger was seen to
    # connect (the evidence a SecurityProfile change waits for), the security events chargers report, and
    # the certificates the edge signed for them (renewed before they expire).
    """
    CREATE TABLE charger_security (
        charger_id      TEXT PRIMARY KEY,
        level           INTEGER NOT NULL,   -- the highest security profile it was seen to connect at
        level_at        TEXT NOT NULL,      -- edge time of the first connection at that level
        last_level      INTEGER NOT NULL,   -- the latest connection's
        last_at         TEXT NOT NULL,
        tls_version     TEXT,               -- the latest TLS connection's
        cipher          TEXT,
        cert_subject    TEXT,               -- the latest client certificate (profile 3)
        cert_serial     TEXT,
        cert_not_after  TEXT,
        cert_sha256     TEXT
    );
    CREATE TABLE security_events (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id      TEXT NOT NULL,
        type            TEXT NOT NULL,      -- SecurityEventNotification type (whitepaper's list, or the vendor's)
        charger_time    TEXT,               -- the charger's timestamp
        tech_info       TEXT,
        critical        INTEGER NOT NULL,   -- 1: alerted to the cloud
        at              TEXT NOT NULL       -- edge time
    );
    CREATE INDEX security_events_by_charger ON security_events (charger_id, id);
    CREATE TABLE issued_certificates (
        serial          TEXT PRIMARY KEY,   -- hex
        charger_id      TEXT NOT NULL,
        sha256          TEXT NOT NULL,
        not_after       TEXT NOT NULL,
        issued_at       TEXT NOT NULL,
        answer          TEXT                -- the charger's CertificateSigned answer (NULL: not sent yet)
    );
    CREATE INDEX issued_certificates_by_charger ON issued_certificates (charger_id, issued_at);
    """,
    # 13: the rest of the 1.6 security extensions (issue 17, edge/ocpp/security_messages.py, logs_upload.py,
    # firmware.py, signed_values.py): GetLog requests and their uploads (a one-time token's hash), signed
    # firmware offered to chargers, signed meter values kept with their transaction, site-wide rotations.
    """
    CREATE TABLE log_requests (
        request_id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- GetLog's requestId
        charger_id      TEXT NOT NULL,
        log_type        TEXT NOT NULL,      -- DiagnosticsLog | SecurityLog
        token_sha256    TEXT NOT NULL,      -- of the one-time upload token (the token itself is never kept)
        requested_at    TEXT NOT NULL,
        expires_at      TEXT NOT NULL,      -- the upload URL is refused after this
        status          TEXT,               -- the latest LogStatusNotification
        status_at       TEXT,
        file_name       TEXT,               -- under the state directory's uploads/, once uploaded
        size            INTEGER,
        sha256          TEXT,
        uploaded_at     TEXT
    );
    CREATE INDEX log_requests_by_charger ON log_requests (charger_id, request_id);
    CREATE TABLE firmware_requests (
        request_id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- SignedUpdateFirmware's requestId
        charger_id      TEXT NOT NULL,
        file_name       TEXT NOT NULL,      -- under the state directory's firmware/
        sha256          TEXT NOT NULL,
        token_sha256    TEXT NOT NULL,      -- of the download token in the location given to the charger
        signer_sha256   TEXT NOT NULL,      -- the signing certificate's fingerprint
        requested_at    TEXT NOT NULL,
        status          TEXT,               -- the latest SignedFirmwareStatusNotification
        status_at       TEXT,
        downloads       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX firmware_requests_by_charger ON firmware_requests (charger_id, request_id);
    CREATE TABLE signed_meter_values (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id      TEXT NOT NULL,
        connector_id    INTEGER NOT NULL,
        transaction_id  INTEGER,            -- NULL: not inside a running transaction of this charger
        timestamp       TEXT NOT NULL,      -- the meterValue's
        context         TEXT,               -- Transaction.Begin | Sample.Periodic | Transaction.End ...
        measurand       TEXT,
        encoding        TEXT NOT NULL,      -- OCMF | EDL | other (what the data looks like)
        signed_data     TEXT NOT NULL,      -- exactly as the charger sent it
        received_at     TEXT NOT NULL
    );
    CREATE INDEX signed_meter_values_by_tx ON signed_meter_values (transaction_id, id);
    CREATE TABLE rotation_steps (
        rotation_id     INTEGER NOT NULL,
        charger_id      TEXT NOT NULL,
        kind            TEXT NOT NULL,      -- certificate | password
        state           TEXT NOT NULL,      -- pending | sent | done | failed | skipped
        detail          TEXT,
        at              TEXT NOT NULL,
        PRIMARY KEY (rotation_id, charger_id, kind)
    );
    """,
    # 14: each charger's meter public key (signed meter values, issue 17: edge/ocpp/signed_values.py), from
    # the config or read from the charger, so a charge record verifies its signed readings with it.
    """
    CREATE TABLE meter_public_keys (
        charger_id      TEXT PRIMARY KEY,
        public_key      TEXT NOT NULL,      -- hex DER (SubjectPublicKeyInfo), as OCMF tools take it
        source          TEXT NOT NULL,      -- config | GetConfiguration <key>
        at              TEXT NOT NULL
    );
    """,
    # 15: the uplink's connection counter (issue 18): incremented before each connection to the broker
    # and put in that connection's birth and last will, so the cloud can order a will against a later
    # birth whichever instance handles which (docs/sync-protocol.md, "Site state").
    """
    ALTER TABLE uplink_settings ADD COLUMN connection INTEGER NOT NULL DEFAULT 0;
    """,
    # 16: CSRs sent to the cloud to sign (issue 17, [ocpp.tls] csr_signing = "cloud": edge/journal/certificates.py).
    # One row per charger and CSR, from SignCertificate to the charger's CertificateSigned answer, so a
    # restart in between loses nothing: waiting (up, no answer yet), signed (the certificate is here, to be
    # sent when the charger is ready), sent (answer: what the charger said), refused (by the cloud: error),
    # superseded (the charger sent a newer CSR), expired (no answer from the cloud in time).
    """
    CREATE TABLE csr_forwards (
        charger_id      TEXT NOT NULL,
        csr_sha256      TEXT NOT NULL,
        csr             TEXT NOT NULL,
        requested_at    TEXT NOT NULL,
        status          TEXT NOT NULL,
        certificate     TEXT,               -- the chain (PEM), the charger's first
        serial          TEXT,
        not_after       TEXT,
        push_id         TEXT,               -- the cloud's Down message that brought it
        answer          TEXT,
        error           TEXT,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (charger_id, csr_sha256)
    );
    CREATE INDEX csr_forwards_by_status ON csr_forwards (status, requested_at);
    """,
    # 17: OCPP 2.0.1 transactions (issue 19, edge/ocpp/v201/transactions.py). The station names a transaction
    # with a string (its transactionId); the site's transactions are the journal's integer ids. One row per
    # station and transactionId: the integer once the session started (NULL while a Started without idToken
    # waits for one, with the start's values kept here), and every TransactionEvent applied, by seqNo, so a
    # redelivered one is answered and changes nothing.
    """
    CREATE TABLE station_transactions (
        charger_id      TEXT NOT NULL,
        station_tx_id   TEXT NOT NULL,      -- transactionInfo.transactionId, as the station sent it
        transaction_id  INTEGER UNIQUE REFERENCES transactions (id),
        evse_id         INTEGER NOT NULL,
        meter_start     INTEGER NOT NULL,   -- Wh, from the Started's energy register
        start_time      TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        PRIMARY KEY (charger_id, station_tx_id)
    );
    CREATE TABLE station_transaction_events (
        charger_id      TEXT NOT NULL,
        station_tx_id   TEXT NOT NULL,
        seq_no          INTEGER NOT NULL,
        event_type      TEXT NOT NULL,      -- Started | Updated | Ended
        offline         INTEGER NOT NULL,
        received_at     TEXT NOT NULL,
        PRIMARY KEY (charger_id, station_tx_id, seq_no)
    );
    """,
    # 18: the OCPP 2.0.1 device model per station (issue 19, block B: edge/journal/device_model.py). Each
    # component variable as the station reported it (NotifyReport) or answered it (GetVariables/SetVariables),
    # one row per attribute type; and each report the edge asked for, with its parts counted as they arrive.
    # The key's optional parts are '' / 0 rather than NULL, so the primary key tells rows apart.
    """
    CREATE TABLE device_variables (
        charger_id          TEXT NOT NULL,
        component           TEXT NOT NULL,
        component_instance  TEXT NOT NULL DEFAULT '',
        evse_id             INTEGER NOT NULL DEFAULT 0,     -- 0: the station as a whole
        connector_id        INTEGER NOT NULL DEFAULT 0,
        variable            TEXT NOT NULL,
        variable_instance   TEXT NOT NULL DEFAULT '',
        attribute_type      TEXT NOT NULL DEFAULT 'Actual', -- Actual | Target | MinSet | MaxSet
        value               TEXT,
        mutability          TEXT,
        data_type           TEXT,
        unit                TEXT,
        min_limit           REAL,
        max_limit           REAL,
        values_list         TEXT,
        status              TEXT,               -- the last Get/SetVariables attributeStatus, if any
        source              TEXT NOT NULL,      -- NotifyReport <requestId> | GetVariables | SetVariables
        updated_at          TEXT NOT NULL,
        PRIMARY KEY (charger_id, component, component_instance, evse_id, connector_id, variable,
                     variable_instance, attribute_type)
    );
    CREATE TABLE device_reports (
        charger_id      TEXT NOT NULL,
        request_id      INTEGER NOT NULL,
        report_base     TEXT,               -- NULL: a report the edge did not ask for
        requested_at    TEXT NOT NULL,
        status          TEXT NOT NULL,      -- requested | receiving | complete
        parts           INTEGER NOT NULL DEFAULT 0,
        items           INTEGER NOT NULL DEFAULT 0,
        dropped         INTEGER NOT NULL DEFAULT 0,   -- variables beyond the station's cap, not stored
        last_seq_no     INTEGER,
        generated_at    TEXT,
        completed_at    TEXT,
        PRIMARY KEY (charger_id, request_id)
    );
    """,
    # 19: the certificateType of an OCPP 2.0.1 SignCertificate (issue 19, block A: ChargingStationCertificate or
    # V2GCertificate; NULL for 1.6 and a 2.0.1 CSR without one), kept with a CSR sent to the cloud so that the
    # CertificateSigned that answers it names the same type, also after a restart (edge/ocpp/security_messages.py).
    """
    ALTER TABLE csr_forwards ADD COLUMN certificate_type TEXT;
    """,
    # 20: OCPP 2.0.1 TransactionEvents held back (issue 19, block E: edge/ocpp/v201/transactions.py). An Ended
    # that arrives before events of its transaction with lower seqNo (a station's queue after being offline)
    # is answered and kept here, whole, until those arrive or the station says none is queued (E14); then
    # it is applied. Kept in the journal so a restart in between loses nothing.
    """
    CREATE TABLE held_transaction_events (
        charger_id      TEXT NOT NULL,
        station_tx_id   TEXT NOT NULL,
        seq_no          INTEGER NOT NULL,
        event           TEXT NOT NULL,      -- the event's fields (snake_case JSON), as the handler got them
        received_at     TEXT NOT NULL,
        PRIMARY KEY (charger_id, station_tx_id, seq_no)
    );
    """,
    # 21: OCPP 2.0.1 stations' NotifyEvent entries and the device model's own settings (issue 19, blocks N and B).
    # notified_events: each entry a station told (edge/ocpp/v201/station_events.py, edge/journal/notified_events.py),
    # the newest KEEP_EVENTS per station, so GET /api/v1/chargers/{id}/events answers the same after a restart; a
    # message the station sends again (same generatedAt, seqNo, eventId) is stored once. device_settings: per
    # station and variable the edge manages (edge/ocpp/v201/device_model.py EDGE_VARIABLES), what the edge last set
    # and what an operator set through the edge, so a station's boot no longer overwrites an operator's choice.
    # device_variables.read_at: when the value was last read from the station (NotifyReport, GetVariables), not
    # written by a SetVariables.
    """
    CREATE TABLE notified_events (
        id              INTEGER PRIMARY KEY,
        charger_id      TEXT NOT NULL,
        at              TEXT NOT NULL,      -- when the edge received it
        generated_at    TEXT,
        seq_no          INTEGER,
        event_id        INTEGER,
        timestamp       TEXT,
        trigger         TEXT,
        component       TEXT,
        evse_id         INTEGER,
        variable        TEXT,
        actual_value    TEXT,
        tech_code       TEXT,
        tech_info       TEXT,
        cleared         INTEGER NOT NULL DEFAULT 0,
        problem         INTEGER NOT NULL DEFAULT 0,
        transaction_id  TEXT,
        UNIQUE (charger_id, generated_at, seq_no, event_id)
    );
    CREATE TABLE device_settings (
        charger_id      TEXT NOT NULL,
        component       TEXT NOT NULL,
        variable        TEXT NOT NULL,
        wanted          TEXT,               -- the edge's value when it last set it (NULL: it never did)
        set_status      TEXT,               -- the station's attributeStatus to the edge's SetVariables
        set_at          TEXT,
        operator_value  TEXT,               -- set through the edge by someone else: kept from then on
        operator_status TEXT,
        operator_at     TEXT,
        PRIMARY KEY (charger_id, component, variable)
    );
    ALTER TABLE device_variables ADD COLUMN read_at TEXT;
    """,
    # 22: OCPP 2.0.1 external charging limits (issue 19, block K: edge/ocpp/v201/charging_limits.py,
    # edge/journal/charging_limits.py): per station and (evseId, source) the limit a system beside the edge holds
    # it to, kept before the NotifyChargingLimit is answered, so that after a restart the load manager counts on
    # no more for that EVSE before the station reconnects. id orders them (a replaced limit is the newest).
    """
    CREATE TABLE external_charging_limits (
        id              INTEGER PRIMARY KEY,
        charger_id      TEXT NOT NULL,
        evse_id         INTEGER NOT NULL,   -- 0: the whole station
        source          TEXT NOT NULL,      -- chargingLimitSource: EMS | Other | SO
        grid_critical   INTEGER,            -- isGridCritical; NULL: not said
        schedules       TEXT NOT NULL,      -- JSON list of the schedules (snake_case), each with its start
        received_at     TEXT NOT NULL,
        via             TEXT NOT NULL,      -- NotifyChargingLimit | ReportChargingProfiles
        UNIQUE (charger_id, evse_id, source)
    );
    """,
    # 23: what OCPP 2.0.1 stations reported of their smart charging, for the operator across a restart (issue 19,
    # block K: edge/ocpp/v201/services.py, edge/journal/smart_charging.py): the profiles reported per
    # GetChargingProfiles request (ReportChargingProfiles, a part kept before it is answered; id orders the
    # requests, the newest last) and the schedules the cars chose (NotifyEVChargingSchedule) with the site's answer.
    """
    CREATE TABLE charging_profile_reports (
        id              INTEGER PRIMARY KEY,
        charger_id      TEXT NOT NULL,
        request_id      INTEGER NOT NULL,
        profiles        TEXT NOT NULL,      -- JSON list (snake_case), each with its evse_id and charging_limit_source
        complete        INTEGER NOT NULL,   -- the last part came (tbc false)
        updated_at      TEXT NOT NULL,
        UNIQUE (charger_id, request_id)
    );
    CREATE TABLE car_charging_schedules (
        id              INTEGER PRIMARY KEY,
        charger_id      TEXT NOT NULL,
        evse_id         INTEGER NOT NULL,
        time_base       TEXT NOT NULL,
        charging_schedule TEXT NOT NULL,    -- JSON (snake_case), as the station sent it
        status          TEXT NOT NULL,      -- the site's answer: Accepted | Rejected
        why             TEXT,               -- why Rejected
        received_at     TEXT NOT NULL
    );
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
