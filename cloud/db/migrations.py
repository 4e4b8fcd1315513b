"""The cloud's schema, as numbered migrations in the SQL both engines accept.

Times are ISO 8601 UTC text with milliseconds and 'Z' (2026-03-01T08:00:00.000Z):
fixed width, so text order is time order in both engines. JSON is text.
Append a migration to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

from cloud.db.connection import Connection

# A migration is SQL both engines accept, or {dialect: SQL} where they differ.
MIGRATIONS: list[str | dict[str, str]] = [
    # 1: everything for issue 7
    """
    CREATE TABLE sites (
        site TEXT PRIMARY KEY,
        online INTEGER,                      -- NULL until the first state message
        state_at TEXT,                       -- the state message's own time
        state_received_at TEXT,
        software_version TEXT NOT NULL DEFAULT '',
        backlog TEXT NOT NULL DEFAULT '{}',  -- per stream, as the last birth message said
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL              -- when anything last arrived from the site
    );
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,         -- sha256 of the token (the token itself is never stored)
        prefix TEXT NOT NULL,                -- its first characters, to tell tokens apart in listings
        operator TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE,
        label TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX api_tokens_operator ON api_tokens(operator);
    CREATE TABLE site_operators (
        site TEXT PRIMARY KEY,
        operator TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE,
        assigned_at TEXT NOT NULL
    );
    CREATE INDEX site_operators_operator ON site_operators(operator, site);
    CREATE TABLE messages (
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (site, id)               -- a redelivered message changes nothing
    );
    CREATE INDEX messages_stream ON messages(site, stream, seq);
    CREATE TABLE streams (
        site TEXT NOT NULL,
        stream TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        received BIGINT NOT NULL,            -- distinct messages (last_seq - received are missing)
        updated_at TEXT NOT NULL,
        PRIMARY KEY (site, stream)
    );
    CREATE TABLE rejections (
        site TEXT NOT NULL,                  -- the topic's site ('' when the topic is not in the tree)
        reason TEXT NOT NULL,
        count BIGINT NOT NULL,
        last_at TEXT NOT NULL,
        last_error TEXT NOT NULL,
        PRIMARY KEY (site, reason)
    );
    CREATE TABLE chargers (
        site TEXT NOT NULL,
        charger_id TEXT NOT NULL,
        connection_status TEXT,
        connection_at TEXT,
        connection_seq BIGINT,
        vendor TEXT,                         -- from its last boot (charger.booted)
        model TEXT,
        serial_number TEXT,
        firmware_version TEXT,
        booted_at TEXT,
        first_seen TEXT NOT NULL,
        last_status_at TEXT NOT NULL,
        PRIMARY KEY (site, charger_id)
    );
    CREATE TABLE connectors (
        site TEXT NOT NULL,
        charger_id TEXT NOT NULL,
        connector_id BIGINT NOT NULL,
        status TEXT,
        error_code TEXT,
        info TEXT,
        at TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (site, charger_id, connector_id)
    );
    CREATE TABLE sessions (
        site TEXT NOT NULL,
        session_id TEXT NOT NULL,
        charger_id TEXT,
        connector_id BIGINT,
        id_tag TEXT,
        started_at TEXT,
        stopped_at TEXT,
        meter_start_wh DOUBLE PRECISION,
        meter_stop_wh DOUBLE PRECISION,
        stop_reason TEXT,
        status TEXT NOT NULL,                -- active | stopped
        sort_at TEXT NOT NULL,               -- start time, or stop time until the start arrives
        updated_at TEXT NOT NULL,
        PRIMARY KEY (site, session_id)
    );
    CREATE INDEX sessions_time ON sessions(site, sort_at, session_id);
    CREATE TABLE cdrs (
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        charger_id TEXT,
        connector_id BIGINT,
        transaction_id BIGINT,
        start_time TEXT NOT NULL,
        stop_time TEXT,
        status TEXT,
        energy_kwh TEXT,
        price_gross TEXT,
        currency TEXT,
        body TEXT NOT NULL,                  -- the edge's CDR, as it sent it
        message_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (site, id)
    );
    CREATE INDEX cdrs_time ON cdrs(site, start_time, id);
    CREATE TABLE telemetry (
        site TEXT NOT NULL,
        message_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (site, message_id)
    );
    CREATE INDEX telemetry_time ON telemetry(site, at, seq);
    CREATE TABLE alerts (
        site TEXT NOT NULL,
        message_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        charger_id TEXT,
        body TEXT NOT NULL,
        PRIMARY KEY (site, message_id)
    );
    CREATE INDEX alerts_time ON alerts(site, at, message_id);
    CREATE TABLE doc_versions (
        site TEXT NOT NULL,
        kind TEXT NOT NULL,
        version BIGINT NOT NULL,             -- the last version handed out
        PRIMARY KEY (site, kind)
    );
    CREATE TABLE pushes (
        id TEXT PRIMARY KEY,                 -- the Down message's id, which the edge's ack names
        site TEXT NOT NULL,
        kind TEXT NOT NULL,
        version BIGINT,                      -- configuration documents only
        mode TEXT NOT NULL,
        document TEXT NOT NULL,
        expires_at TEXT,                     -- commands only
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        status TEXT NOT NULL,
        published_at TEXT,
        acked_at TEXT,
        applied_version BIGINT,
        error TEXT,
        result TEXT
    );
    CREATE INDEX pushes_site ON pushes(site, created_at, id);
    CREATE UNIQUE INDEX pushes_version ON pushes(site, kind, version) WHERE version IS NOT NULL;
    CREATE INDEX pushes_unpublished ON pushes(created_at) WHERE published_at IS NULL
    """,
    # 2: a push stays open until the site's ack (not the broker's PUBACK): it is sent again on the
    # site's birth and now and then, with a back-off counted here.
    """
    ALTER TABLE pushes ADD COLUMN sent_count BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE pushes ADD COLUMN last_sent_at TEXT;
    CREATE INDEX pushes_open ON pushes(status) WHERE status IN ('pending', 'published')
    """,
    # 3: revisions of charge records. A corrected session's record comes again as a new record (its
    # own id) that supersedes the previous one; both are kept, lists and the CSV show the latest.
    """
    ALTER TABLE cdrs ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE cdrs ADD COLUMN supersedes TEXT;
    CREATE INDEX cdrs_supersedes ON cdrs(site, supersedes);
    CREATE INDEX cdrs_transaction ON cdrs(site, transaction_id)
    """,
    # 4: Idempotency-Key on POSTs (issue 18): a client that retries after a lost answer gets the first
    # request's push, not a second one. Kept per operator; rows older than a day are pruned.
    """
    CREATE TABLE idempotency_keys (
        operator TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,          -- sha256 of method, path and the body as sent
        push_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (operator, key)
    );
    CREATE INDEX idempotency_keys_time ON idempotency_keys(created_at)
    """,
    # 5: the state topic shared between instances (issue 18, observation 5). A site's birth and will
    # carry its connection counter; a state is kept only if its counter is not below the stored one
    # (a will of connection n handled after the birth of n + 1 by another instance changes nothing).
    # state_sweeps: which instance last re-read a broker's retained states, so one does, not all.
    """
    ALTER TABLE sites ADD COLUMN state_connection BIGINT;
    CREATE TABLE state_sweeps (
        broker TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
    # 6: telemetry stored once and not for ever (issue 18, observation 6). Its bodies leave `messages`
    # (which keeps the streams kept for ever: cdr, session, status, alert) for `telemetry_raw`, one
    # row per point whose key (site, time, message id) is also what makes a redelivery change
    # nothing. PostgreSQL partitions it by day (cloud/store/retention.py attaches a day ahead and
    # drops a day past CLOUD_TELEMETRY_RAW_DAYS, after folding it into `telemetry_1m`); a point
    # outside every day waits in the default partition. Times there compare byte-wise (COLLATE "C"),
    # as partition bounds must. SQLite: one plain table, the same retention by DELETE.
    # `maintenance`: the time before which telemetry is only kept as aggregates, and the job's runs.
    {"postgresql": """
    CREATE TABLE telemetry_raw (
        site TEXT NOT NULL,
        at TEXT COLLATE "C" NOT NULL,        -- the point's time (its body's `at`, else the message's)
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (site, at, message_id)
    ) PARTITION BY RANGE (at);
    CREATE TABLE telemetry_raw_default PARTITION OF telemetry_raw DEFAULT;
    INSERT INTO telemetry_raw (site, at, seq, message_id, body) SELECT site, at, seq, message_id, body FROM telemetry;
    DROP TABLE telemetry;
    DELETE FROM messages WHERE stream = 'telemetry';
    CREATE TABLE telemetry_1m (
        site TEXT NOT NULL,
        minute TEXT COLLATE "C" NOT NULL,
        points BIGINT NOT NULL,              -- raw points folded in
        seqs TEXT NOT NULL,                  -- their seqs, as runs: 4-9,12
        body TEXT NOT NULL,
        PRIMARY KEY (site, minute)
    );
    CREATE TABLE maintenance (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """, "sqlite": """
    CREATE TABLE telemetry_raw (
        site TEXT NOT NULL,
        at TEXT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (site, at, message_id)
    ) WITHOUT ROWID;
    INSERT INTO telemetry_raw (site, at, seq, message_id, body) SELECT site, at, seq, message_id, body FROM telemetry;
    DROP TABLE telemetry;
    DELETE FROM messages WHERE stream = 'telemetry';
    CREATE TABLE telemetry_1m (
        site TEXT NOT NULL,
        minute TEXT NOT NULL,
        points BIGINT NOT NULL,
        seqs TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (site, minute)
    ) WITHOUT ROWID;
    CREATE TABLE maintenance (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """},
    # 7: chargers' CSRs the sites send up to be signed with the operator's CA (issue 17, cloud/certificates.py).
    # One row per site and CSR (a CSR sent again is the same row, and gets the same certificate): pending, then
    # issued (serial, certificate, the push that carries it down) or refused (error); answer: what the charger
    # said to the CertificateSigned (certificate.answer from the site).
    """
    CREATE TABLE csrs (
        site TEXT NOT NULL,
        csr_sha256 TEXT NOT NULL,
        charger_id TEXT NOT NULL,
        csr TEXT NOT NULL,
        message_id TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        serial TEXT,
        not_after TEXT,
        certificate TEXT,
        push_id TEXT,
        settled_at TEXT,
        answer TEXT,
        answered_at TEXT,
        PRIMARY KEY (site, csr_sha256)
    );
    CREATE INDEX csrs_pending ON csrs(status, received_at);
    CREATE INDEX csrs_site ON csrs(site, received_at)
    """,
]


def _statements(script: str) -> list[str]:
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())   # comments may hold ; or ?
    return [s.strip() for s in code.split(";") if s.strip()]


def migrate(conn: Connection) -> int:
    """Runs in the caller's write transaction; -> the schema version now in force."""
    if conn.dialect == "postgresql":
        # Two instances starting at once: the second waits here, then finds the schema current.
        conn.run("SELECT pg_advisory_xact_lock(?)", (0x5C_C10D,))
    conn.run("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
    row = conn.one("SELECT max(version) AS version FROM schema_version")
    current = (row or {}).get("version") or 0
    if current > len(MIGRATIONS):
        raise RuntimeError(f"the database schema is version {current}, newer than this release knows "
                           f"({len(MIGRATIONS)}); upgrade the cloud service")
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        for statement in _statements(script if isinstance(script, str) else script[conn.dialect]):
            conn.run(statement)
        conn.run("INSERT INTO schema_version (version) VALUES (?)", (number,))
    return len(MIGRATIONS)
