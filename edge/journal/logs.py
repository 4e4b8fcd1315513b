"""The journal's logs: the actions log (central-system commands), the network log, the
communication log (frames, bounded per charger) and data transfers; `log` reads any of them,
the hardware log (written by chargers.py) and the authorizations log (authorization.py) too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from edge.journal.base import StoreBase, _rows


def _number(value: Any) -> Any:
    """JSON for what the ocpp library hands over as Decimal (charging schedule limits)."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class LogStore(StoreBase):
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
