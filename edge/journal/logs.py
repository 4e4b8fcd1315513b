"""The journal's logs: the actions log (central-system commands), the network log, the
communication log (frames, bounded per charger) and data transfers; `log` reads any of them,
the hardware log (written by chargers.py) and the authorizations log (authorization.py) too.
The network and communication logs are kept bounded here (by count per charger, by age, and
tighter for strangers: the policy is edge/ocpp/strangers.py's); `latest_refusals` reads each
charger's last refused handshake from the network log (edge/ocpp/refusals.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from edge.journal.base import CHARGER_LOGS, StoreBase, _rows


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
            self._keep_newest("communication_log", charger_id, keep_per_charger)

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

    def latest_refusals(self, charger_id: str | None = None) -> list[dict]:
        """Each charger's last refused handshake (newest first), and whether it connected after it."""
        where, args = ("WHERE charger_id = ?", (charger_id,)) if charger_id is not None else ("", ())
        rows = self.conn.execute(
            f"""SELECT n.charger_id, n.at, n.event, n.detail,
                       EXISTS (SELECT 1 FROM network_log c WHERE c.charger_id = n.charger_id AND c.id > n.id
                               AND c.event = 'connected') AS connected_since
                FROM network_log n JOIN (
                  SELECT charger_id, max(id) AS id FROM network_log
                  WHERE event IN ('refused', 'auth-rejected') GROUP BY charger_id) AS last ON n.id = last.id
                {where.replace("charger_id", "n.charger_id")} ORDER BY n.id DESC""", args)
        return [{"charger_id": r[0], "at": r[1], "event": r[2], "reason": r[3], "connected_since": bool(r[4])}
                for r in rows]

    # -- bounds ---------------------------------------------------------------------------------------------

    def trim_stranger_logs(self, touched: list[str], evicted: list[str], keep: int) -> None:
        """Ids in `touched` keep their newest `keep` rows of each charger log; those in `evicted` lose
        their logs, unless they still have a chargers row."""
        for charger_id in touched:
            for table in CHARGER_LOGS:
                self._keep_newest(table, charger_id, keep)
        if evicted:
            gone = json.dumps(evicted)
            for table in CHARGER_LOGS:
                self.conn.execute(
                    f"DELETE FROM {table} WHERE charger_id IN (SELECT value FROM json_each(?)) "
                    "AND charger_id NOT IN (SELECT id FROM chargers)", (gone,))

    def sweep_logs(self, known: list[str], old: str, stranger_old: str, chunk: int, chunks: int,
                   network_rows: int) -> None:
        """The charger logs' rows before `old` go, and those of ids not in `known` (strangers) before
        `stranger_old`, at most `chunks` chunks of `chunk` rows a log; then each known charger keeps its
        newest `network_rows` of the network log."""
        args = {"known": json.dumps(known), "old": old, "stranger_old": stranger_old}
        stranger = "charger_id NOT IN (SELECT value FROM json_each(:known))"
        for table in CHARGER_LOGS:
            # Rows are appended in time order: the oldest are the first by id, so
            # a chunk from the start is all that an age check ever needs to scan.
            for _ in range(chunks):
                deleted = self.conn.execute(
                    f"""DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT :chunk)
                          AND (at < :old OR (at < :stranger_old AND {stranger}))""",
                    {**args, "chunk": chunk}).rowcount
                if deleted < chunk:
                    break
        for charger_id in known:
            self._keep_newest("network_log", charger_id, network_rows)
