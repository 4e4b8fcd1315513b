"""The journal's OCPP 2.0.1 external charging limits (edge/ocpp/v201/charging_limits.py, migration 22): per
station and per (evseId, source) the limit a system beside the edge holds it to, as the station told it
(NotifyChargingLimit, or a reported ChargingStationExternalConstraints profile), so that after a restart the
load manager counts on no more for that EVSE before the station reconnects. A newer limit of the same
(evseId, source) replaces the older one and becomes the newest; a station's newest `keep` are kept;
ClearedChargingLimit deletes. The schedules are kept as JSON, as the edge holds them (snake_case)."""

from __future__ import annotations

import json
from typing import Any, Iterable

from edge.journal.base import StoreBase

_COLUMNS = ("evse_id", "source", "grid_critical", "schedules", "received_at", "via")


def stored(limit: dict[str, Any]) -> tuple[Any, ...]:
    """A limit (evse_id, source, grid_critical, schedules, received_at, via) as its row's values."""
    critical = limit["grid_critical"]
    return (limit["evse_id"], limit["source"], None if critical is None else int(critical),
            json.dumps(limit["schedules"], allow_nan=False, separators=(",", ":")), limit["received_at"],
            limit["via"])


def read_back(row: Any) -> dict[str, Any]:
    """A row as the limit it stores (the inverse of `stored`)."""
    critical = row["grid_critical"]
    return {"charger_id": row["charger_id"], "evse_id": row["evse_id"], "source": row["source"],
            "grid_critical": None if critical is None else bool(critical),
            "schedules": json.loads(row["schedules"]), "received_at": row["received_at"], "via": row["via"]}


class ChargingLimitStore(StoreBase):
    def keep_external_limit(self, charger_id: str, limit: dict[str, Any], keep: int) -> None:
        """The station's limit of that (evse_id, source), replacing the one before it, as the newest; then the
        station's newest `keep` kept."""
        self.conn.execute("DELETE FROM external_charging_limits WHERE charger_id = ? AND evse_id = ? AND source = ?",
                          (charger_id, limit["evse_id"], limit["source"]))
        self.conn.execute(
            f"""INSERT INTO external_charging_limits (charger_id, {", ".join(_COLUMNS)})
                VALUES (?, {", ".join("?" * len(_COLUMNS))})""", (charger_id, *stored(limit)))
        self._keep_newest("external_charging_limits", charger_id, keep)

    def clear_external_limits(self, charger_id: str, keys: Iterable[tuple[int, str]]) -> int:
        """The station's limits of these (evse_id, source) gone; -> how many there were."""
        return sum(self.conn.execute(
            "DELETE FROM external_charging_limits WHERE charger_id = ? AND evse_id = ? AND source = ?",
            (charger_id, evse, source)).rowcount for evse, source in keys)

    def external_limits(self) -> list[dict[str, Any]]:
        """Every station's limits, oldest first (as received; `read_back`'s form)."""
        return [read_back(row) for row in self.conn.execute(
            f"SELECT charger_id, {', '.join(_COLUMNS)} FROM external_charging_limits ORDER BY id")]
