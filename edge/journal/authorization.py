"""The journal's authorization: the authorization model's versions, each decision taken
(the authorizations log) and the local list each charger holds.

A transaction's flag from a decision is written by transactions.py (it owns the row).
"""

from __future__ import annotations

import json
from typing import Any

from edge.journal.base import StoreBase, _rows


class AuthorizationStore(StoreBase):
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
