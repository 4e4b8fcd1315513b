"""The journal's records of the OCPP security whitepaper (edge/ocpp/security_*.py, firmware.py,
logs_upload.py, rotation.py): chargers' security events, the security level each charger was seen
to connect at, GetLog requests and their uploads, signed firmware offered, and site-wide credential
rotations with their steps.

The policy stays with the callers (how many events a charger keeps, which rotation states are open):
these methods take it as arguments.
"""

from __future__ import annotations

from typing import Any

from edge.journal.base import StoreBase, _for_charger, _rows

# charger_security (migration 12): what edge/ocpp/security_state.py's Seen holds, by the same names.
_LEVEL_COLUMNS = ("level, level_at, last_level, last_at, tls_version, cipher, cert_subject, cert_serial, "
                  "cert_not_after, cert_sha256")


class SecurityStore(StoreBase):
    # -- security events (SecurityEventNotification) ------------------------------------------------------

    def record_security_event(self, charger_id: str, event_type: str, charger_time: str | None,
                              tech_info: str | None, critical: bool, at: str, keep_per_charger: int) -> int:
        """-> the event's id. The charger's events are bounded to its newest `keep_per_charger`: a
        charger on a bad link reports invalid messages without end."""
        event_id = self.conn.execute(
            "INSERT INTO security_events (charger_id, type, charger_time, tech_info, critical, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (charger_id, event_type, charger_time, tech_info, int(critical), at)).lastrowid
        self._keep_newest("security_events", charger_id, keep_per_charger)
        return int(event_id)

    def security_events(self, charger_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        where, args = _for_charger(charger_id)
        rows = _rows(self.conn.execute(
            f"SELECT id, charger_id, type, charger_time, tech_info, critical, at FROM security_events {where} "
            "ORDER BY id DESC LIMIT ?", (*args, limit)))
        return [{**row, "critical": bool(row["critical"])} for row in rows]

    # -- the level each charger was seen to connect at -----------------------------------------------------

    def record_security_level(self, charger_id: str, level: int, at: str,
                              tls: dict[str, Any] | None) -> dict[str, Any]:
        """A connection at `level` (with its TLS and client certificate, when any): the highest level
        seen is kept with when, the last one too. -> the charger's row (the columns of _LEVEL_COLUMNS)."""
        tls = tls or {}
        self.conn.execute(
            f"""INSERT INTO charger_security (charger_id, {_LEVEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (charger_id) DO UPDATE SET
                  level_at = CASE WHEN excluded.level > level THEN excluded.level_at ELSE level_at END,
                  level = max(level, excluded.level), last_level = excluded.last_level, last_at = excluded.last_at,
                  tls_version = coalesce(excluded.tls_version, tls_version), cipher = coalesce(excluded.cipher, cipher),
                  cert_subject = coalesce(excluded.cert_subject, cert_subject),
                  cert_serial = coalesce(excluded.cert_serial, cert_serial),
                  cert_not_after = coalesce(excluded.cert_not_after, cert_not_after),
                  cert_sha256 = coalesce(excluded.cert_sha256, cert_sha256)""",
            (charger_id, level, at, level, at, tls.get("version"), tls.get("cipher"), tls.get("subject"),
             tls.get("serial"), tls.get("not_after"), tls.get("sha256")))
        return _rows(self.conn.execute(f"SELECT {_LEVEL_COLUMNS} FROM charger_security WHERE charger_id = ?",
                                       (charger_id,)))[0]

    def security_levels(self) -> dict[str, dict[str, Any]]:
        """Every charger's row of record_security_level, by charger id."""
        return {row.pop("charger_id"): row for row in _rows(self.conn.execute(
            f"SELECT charger_id, {_LEVEL_COLUMNS} FROM charger_security"))}

    # -- GetLog requests and their uploads ---------------------------------------------------------------

    def create_log_request(self, charger_id: str, log_type: str, token_sha256: str, at: str,
                           expires_at: str) -> int:
        return int(self.conn.execute(
            "INSERT INTO log_requests (charger_id, log_type, token_sha256, requested_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)", (charger_id, log_type, token_sha256, at, expires_at)).lastrowid)

    def log_request_status(self, charger_id: str, request_id: int | None, status: str, at: str) -> bool:
        """LogStatusNotification; an Idle without a requestId (a trigger) matches nothing. -> whether it matched."""
        return self._request_status("log_requests", charger_id, request_id, status, at)

    def open_log_request(self, token_sha256: str, now: str) -> tuple[int, str] | None:
        """The request whose token this is, while it takes an upload: (request id, charger id)."""
        row = self.conn.execute(
            "SELECT request_id, charger_id FROM log_requests WHERE token_sha256 = ? AND uploaded_at IS NULL "
            "AND expires_at > ?", (token_sha256, now)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def log_uploaded(self, request_id: int, file_name: str, size: int, sha256: str, at: str) -> bool:
        """Spends the token: only the first complete upload counts. -> whether this one did."""
        return self.conn.execute(
            "UPDATE log_requests SET file_name = ?, size = ?, sha256 = ?, uploaded_at = ? WHERE request_id = ? "
            "AND uploaded_at IS NULL", (file_name, size, sha256, at, request_id)).rowcount > 0

    def log_requests(self, charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first (without the token)."""
        where, args = _for_charger(charger_id)
        return _rows(self.conn.execute(
            "SELECT request_id, charger_id, log_type, requested_at, expires_at, status, status_at, file_name, size, "
            f"sha256, uploaded_at FROM log_requests {where} ORDER BY request_id DESC LIMIT ?", (*args, limit)))

    # -- signed firmware offered (SignedUpdateFirmware) --------------------------------------------------

    def create_firmware_request(self, charger_id: str, file_name: str, sha256: str, token_sha256: str,
                                signer_sha256: str, at: str) -> int:
        return int(self.conn.execute(
            "INSERT INTO firmware_requests (charger_id, file_name, sha256, token_sha256, signer_sha256, "
            "requested_at) VALUES (?, ?, ?, ?, ?, ?)",
            (charger_id, file_name, sha256, token_sha256, signer_sha256, at)).lastrowid)

    def firmware_request_status(self, charger_id: str, request_id: int | None, status: str, at: str) -> bool:
        """SignedFirmwareStatusNotification. -> whether it matched a request of the charger."""
        return self._request_status("firmware_requests", charger_id, request_id, status, at)

    def firmware_download(self, token_sha256: str) -> str | None:
        """The file a download token is for (its downloads counted), or None."""
        row = self.conn.execute("SELECT request_id, file_name FROM firmware_requests WHERE token_sha256 = ?",
                                (token_sha256,)).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE firmware_requests SET downloads = downloads + 1 WHERE request_id = ?", (row[0],))
        return str(row[1])

    def firmware_requests(self, charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first (without the token)."""
        where, args = _for_charger(charger_id)
        return _rows(self.conn.execute(
            "SELECT request_id, charger_id, file_name, sha256, signer_sha256, requested_at, status, status_at, "
            f"downloads FROM firmware_requests {where} ORDER BY request_id DESC LIMIT ?", (*args, limit)))

    def _request_status(self, table: str, charger_id: str, request_id: int | None, status: str, at: str) -> bool:
        if request_id is None:
            return False
        return self.conn.execute(f"UPDATE {table} SET status = ?, status_at = ? WHERE request_id = ? "
                                 "AND charger_id = ?", (status, at, request_id, charger_id)).rowcount > 0

    # -- site-wide credential rotations ------------------------------------------------------------------

    def start_rotation(self, steps: list[tuple[str, str, str, str | None]], at: str) -> int:
        """A new rotation with its steps (charger id, kind, state, detail). -> its id."""
        row = self.conn.execute("SELECT coalesce(max(rotation_id), 0) + 1 FROM rotation_steps").fetchone()
        rotation_id = int(row[0])
        self.conn.executemany(
            "INSERT INTO rotation_steps (rotation_id, charger_id, kind, state, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
            [(rotation_id, charger_id, kind, state, detail, at) for charger_id, kind, state, detail in steps])
        return rotation_id

    def rotation_step(self, rotation_id: int, charger_id: str, kind: str, state: str, detail: str | None,
                      at: str) -> None:
        self.conn.execute("UPDATE rotation_steps SET state = ?, detail = ?, at = ? WHERE rotation_id = ? AND "
                          "charger_id = ? AND kind = ?", (state, detail, at, rotation_id, charger_id, kind))

    def rotation_steps(self, rotation_id: int | None = None) -> tuple[int | None, list[dict[str, Any]]]:
        """A rotation's steps (the latest rotation's when None), by kind and charger: (its id, steps);
        (None, []) when there never was one."""
        if rotation_id is None:
            rotation_id = self.conn.execute("SELECT max(rotation_id) FROM rotation_steps").fetchone()[0]
        if rotation_id is None:
            return None, []
        return rotation_id, _rows(self.conn.execute(
            "SELECT charger_id, kind, state, detail, at FROM rotation_steps WHERE rotation_id = ? "
            "ORDER BY kind, charger_id", (rotation_id,)))
