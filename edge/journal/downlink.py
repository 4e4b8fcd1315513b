"""The journal's downlink (edge/uplink/downlink.py): the documents the cloud sent (applied
versions), its commands seen (so a redelivery runs once) and the log of their outcomes.
"""

from __future__ import annotations

import json
from typing import Any

from edge.journal.base import StoreBase, _rows


class DownlinkStore(StoreBase):
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
