"""The journal's OCPP 2.0.1 NotifyEvent entries (edge/ocpp/v201/station_events.py, migration 21): each entry a
station told, the newest `keep` per station (older ones go as new ones come), read back newest first by
GET /api/v1/chargers/{id}/events. An entry the station sends again (a NotifyEvent resent because its answer
was lost: the same generatedAt, seqNo and eventId) is stored once, and the caller learns it was a repeat."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from edge.journal.base import StoreBase

_COLUMNS = ("at", "generated_at", "seq_no", "event_id", "timestamp", "trigger", "component", "evse_id", "variable",
            "actual_value", "tech_code", "tech_info", "cleared", "problem", "transaction_id")
_FLAGS = ("cleared", "problem")


class NotifiedEventStore(StoreBase):
    def add_notified_events(self, charger_id: str, entries: Iterable[Mapping[str, Any]], keep: int) -> list[bool]:
        """The entries stored in order, then the station's newest `keep` kept. -> per entry, whether it was
        new (False: the station had sent it before)."""
        new = []
        for entry in entries:
            values = [entry.get(c) for c in _COLUMNS]
            new.append(self.conn.execute(
                f"""INSERT INTO notified_events (charger_id, {", ".join(_COLUMNS)})
                    VALUES (?, {", ".join("?" * len(_COLUMNS))}) ON CONFLICT DO NOTHING""",
                (charger_id, *values)).rowcount > 0)
        if any(new):
            self._keep_newest("notified_events", charger_id, keep)
        return new

    def notified_events(self, charger_id: str) -> list[dict[str, Any]]:
        """The station's kept entries, oldest first (as received), each as the edge made it."""
        rows = []
        for row in self.conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM notified_events WHERE charger_id = ? ORDER BY id",
                (charger_id,)):
            entry = dict(row)
            for flag in _FLAGS:
                entry[flag] = bool(entry[flag])
            rows.append(entry)
        return rows
