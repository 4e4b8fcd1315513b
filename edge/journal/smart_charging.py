"""The journal's OCPP 2.0.1 smart-charging reports (edge/ocpp/v201/services.py, migration 23), for the operator
across a restart (GET /api/v1/chargers/{id}/smart-charging): the profiles a station reported per GetChargingProfiles
request (ReportChargingProfiles, in parts: a part rewrites its request's row, which becomes the newest) and the
schedules its cars chose (NotifyEVChargingSchedule) with the site's answer. Each the station's newest `keep`;
profiles and schedules as JSON, as the edge holds them (snake_case)."""

from __future__ import annotations

import json
from typing import Any

from edge.journal.base import StoreBase


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class SmartChargingStore(StoreBase):
    def keep_profile_report(self, charger_id: str, request_id: int, profiles: list[dict[str, Any]], complete: bool,
                            at: str, keep: int) -> None:
        """The request's profiles so far (each with its evse_id and charging_limit_source) and whether the station
        said it is done, as the station's newest report; then its newest `keep` reports kept."""
        self.conn.execute("DELETE FROM charging_profile_reports WHERE charger_id = ? AND request_id = ?",
                          (charger_id, request_id))
        self.conn.execute(
            """INSERT INTO charging_profile_reports (charger_id, request_id, profiles, complete, updated_at)
               VALUES (?, ?, ?, ?, ?)""", (charger_id, request_id, _json(profiles), int(complete), at))
        self._keep_newest("charging_profile_reports", charger_id, keep)

    def profile_reports(self) -> list[dict[str, Any]]:
        """Every station's kept reports, oldest first: charger_id, request_id, profiles, complete."""
        return [{"charger_id": r["charger_id"], "request_id": r["request_id"], "profiles": json.loads(r["profiles"]),
                 "complete": bool(r["complete"])} for r in self.conn.execute(
            "SELECT charger_id, request_id, profiles, complete FROM charging_profile_reports ORDER BY id")]

    def keep_car_schedule(self, charger_id: str, entry: dict[str, Any], at: str, keep: int) -> None:
        """A car's schedule as the edge answered it (evse_id, time_base, charging_schedule, status, maybe why);
        then the station's newest `keep` kept."""
        self.conn.execute(
            """INSERT INTO car_charging_schedules (charger_id, evse_id, time_base, charging_schedule, status, why,
                                                   received_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (charger_id, entry["evse_id"], entry["time_base"], _json(entry["charging_schedule"]), entry["status"],
             entry.get("why"), at))
        self._keep_newest("car_charging_schedules", charger_id, keep)

    def car_schedules(self) -> list[dict[str, Any]]:
        """Every station's kept car schedules, oldest first, as keep_car_schedule took them (with charger_id)."""
        return [{"charger_id": r["charger_id"], "evse_id": r["evse_id"], "time_base": r["time_base"],
                 "charging_schedule": json.loads(r["charging_schedule"]), "status": r["status"],
                 **({"why": r["why"]} if r["why"] is not None else {})} for r in self.conn.execute(
            """SELECT charger_id, evse_id, time_base, charging_schedule, status, why FROM car_charging_schedules
               ORDER BY id""")]
