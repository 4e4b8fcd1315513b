"""The journal's OCPP 2.0.1 device model: each station's component variables as it reported them
(GetBaseReport -> NotifyReport) and as GetVariables/SetVariables answered (edge/ocpp/v201/device_model.py);
`read_at` says when a value was last read from the station (a report or a GetVariables), `updated_at` when the
row last changed (a SetVariables answer too).

And `device_settings` (migration 21): per station, each variable the edge manages (EDGE_VARIABLES), the value the
edge last set and the station's answer, and a value someone else set through the edge (an operator's
SetVariables), which the edge keeps from then on.

One row per station, component (with its instance and EVSE/connector), variable (with its instance)
and attribute type; a later report or answer updates the row. Bounded: a station keeps at most
`MAX_VARIABLES` rows; a report part that would add more stores what fits and counts the rest
(`device_reports.dropped`), and the caller logs it. A value is stored as the station sent it (the
2.0.1 schema bounds it to 2500 characters).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from edge.journal.base import StoreBase, _rows

# A station may report thousands of variables (a DC charger with monitoring): the edge keeps this many.
MAX_VARIABLES = 2000
_KEY = ("component", "component_instance", "evse_id", "connector_id", "variable", "variable_instance",
        "attribute_type")
_COLUMNS = _KEY + ("value", "mutability", "data_type", "unit", "min_limit", "max_limit", "values_list", "status")


class DeviceModelStore(StoreBase):
    def open_device_report(self, charger_id: str, request_id: int, report_base: str, at: str) -> None:
        """The edge asked for a report (GetBaseReport): its parts are counted against this row."""
        self.conn.execute(
            """INSERT INTO device_reports (charger_id, request_id, report_base, requested_at, status)
               VALUES (?, ?, ?, ?, 'requested')
               ON CONFLICT (charger_id, request_id) DO UPDATE SET report_base = excluded.report_base,
                 requested_at = excluded.requested_at, status = 'requested', parts = 0, items = 0, dropped = 0""",
            (charger_id, request_id, report_base, at))

    def store_report_part(self, charger_id: str, request_id: int, seq_no: int, last: bool,
                          rows: Iterable[Mapping[str, Any]], generated_at: str, at: str) -> dict[str, int]:
        """One NotifyReport part: its variables upserted (new ones up to MAX_VARIABLES), the report's
        counts updated, completed when `last` (tbc false). -> {"stored", "dropped", "parts", "items"}."""
        stored, dropped = self.upsert_variables(charger_id, rows, f"NotifyReport {request_id}", at)
        self.conn.execute(
            """INSERT INTO device_reports (charger_id, request_id, report_base, requested_at, status)
               VALUES (?, ?, NULL, ?, 'receiving') ON CONFLICT DO NOTHING""", (charger_id, request_id, at))
        self.conn.execute(
            """UPDATE device_reports SET parts = parts + 1, items = items + ?, dropped = dropped + ?,
                 last_seq_no = max(coalesce(last_seq_no, -1), ?), generated_at = ?,
                 status = CASE WHEN ? THEN 'complete' ELSE 'receiving' END,
                 completed_at = CASE WHEN ? THEN ? ELSE completed_at END
               WHERE charger_id = ? AND request_id = ?""",
            (stored, dropped, seq_no, generated_at, last, last, at, charger_id, request_id))
        row = self.conn.execute("SELECT parts, items FROM device_reports WHERE charger_id = ? AND request_id = ?",
                                (charger_id, request_id)).fetchone()
        return {"stored": stored, "dropped": dropped, "parts": row["parts"], "items": row["items"]}

    def upsert_variables(self, charger_id: str, rows: Iterable[Mapping[str, Any]], source: str,
                         at: str) -> tuple[int, int]:
        """Rows (the keys of _COLUMNS) stored or updated; a new one only while the station holds fewer
        than MAX_VARIABLES. A None in a row keeps what the row had (a SetVariables answer has no
        data type). -> (stored, dropped)."""
        count = self.conn.execute("SELECT count(*) FROM device_variables WHERE charger_id = ?",
                                  (charger_id,)).fetchone()[0]
        stored = dropped = 0
        for row in rows:
            key = tuple(row.get(k) for k in _KEY)
            exists = self.conn.execute(
                f"""SELECT 1 FROM device_variables WHERE charger_id = ? AND
                    {" AND ".join(f"{k} = ?" for k in _KEY)}""", (charger_id, *key)).fetchone() is not None
            if not exists and count >= MAX_VARIABLES:
                dropped += 1
                continue
            values = [row.get(k) for k in _COLUMNS]
            updates = ", ".join(f"{k} = coalesce(excluded.{k}, {k})" for k in _COLUMNS[len(_KEY):])
            # Read from the station: a report's row, a GetVariables answer with a value (not a SetVariables).
            read_at = at if source != "SetVariables" and (row.get("value") is not None or
                                                          source.startswith("NotifyReport")) else None
            self.conn.execute(
                f"""INSERT INTO device_variables (charger_id, {", ".join(_COLUMNS)}, source, updated_at, read_at)
                    VALUES (?, {", ".join("?" * len(_COLUMNS))}, ?, ?, ?)
                    ON CONFLICT ({", ".join(("charger_id",) + _KEY)}) DO UPDATE SET {updates},
                      source = excluded.source, updated_at = excluded.updated_at,
                      read_at = coalesce(excluded.read_at, read_at)""",
                (charger_id, *values, source, at, read_at))
            stored += 1
            count += 0 if exists else 1
        return stored, dropped

    def device_variables(self, charger_id: str, *, component: str | None = None, limit: int = MAX_VARIABLES,
                         offset: int = 0) -> list[dict[str, Any]]:
        """A station's stored variables, by component, EVSE and variable (`component`: only that one)."""
        where, args = "WHERE charger_id = ?", [charger_id]
        if component:
            where, args = where + " AND component = ?", args + [component]
        return _rows(self.conn.execute(
            f"""SELECT * FROM device_variables {where}
                ORDER BY component, component_instance, evse_id, connector_id, variable, variable_instance,
                         attribute_type LIMIT ? OFFSET ?""", (*args, limit, offset)))

    def device_variable(self, charger_id: str, component: str, variable: str, *, instance: str = "",
                        evse_id: int = 0) -> str | None:
        """One variable's Actual value as last reported (None: not known)."""
        row = self.conn.execute(
            """SELECT value FROM device_variables WHERE charger_id = ? AND component = ? AND variable = ?
               AND variable_instance = ? AND evse_id = ? AND component_instance = '' AND connector_id = 0
               AND attribute_type = 'Actual'""", (charger_id, component, variable, instance, evse_id)).fetchone()
        return row[0] if row else None

    def device_reports(self, charger_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return _rows(self.conn.execute(
            "SELECT * FROM device_reports WHERE charger_id = ? ORDER BY requested_at DESC, request_id DESC LIMIT ?",
            (charger_id, limit)))

    def device_report(self, charger_id: str, request_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM device_reports WHERE charger_id = ? AND request_id = ?",
                                (charger_id, request_id)).fetchone()
        return dict(row) if row else None

    def device_variable_read(self, charger_id: str, component: str, variable: str) -> dict[str, Any] | None:
        """One variable's Actual row of the station as a whole: its value, source, read_at (None: not known)."""
        row = self.conn.execute(
            """SELECT value, source, read_at, updated_at FROM device_variables WHERE charger_id = ? AND component = ?
               AND variable = ? AND variable_instance = '' AND evse_id = 0 AND component_instance = ''
               AND connector_id = 0 AND attribute_type = 'Actual'""", (charger_id, component, variable)).fetchone()
        return dict(row) if row else None

    # -- the variables the edge manages (device_settings) --

    def device_settings(self, charger_id: str) -> list[dict[str, Any]]:
        return _rows(self.conn.execute(
            "SELECT * FROM device_settings WHERE charger_id = ? ORDER BY component, variable", (charger_id,)))

    def note_edge_settings(self, charger_id: str, settings: Iterable[tuple[str, str, str, str]], at: str) -> None:
        """The edge set each (component, variable, wanted) and the station answered its status."""
        self.conn.executemany(
            """INSERT INTO device_settings (charger_id, component, variable, wanted, set_status, set_at)
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (charger_id, component, variable) DO UPDATE SET
                 wanted = excluded.wanted, set_status = excluded.set_status, set_at = excluded.set_at""",
            [(charger_id, component, variable, wanted, status, at) for component, variable, wanted, status in settings])

    def note_operator_setting(self, charger_id: str, component: str, variable: str, value: str, status: str,
                              at: str) -> None:
        """Someone else set `value` through the edge and the station took it (`status`): kept from now on."""
        self.conn.execute(
            """INSERT INTO device_settings (charger_id, component, variable, operator_value, operator_status,
                 operator_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (charger_id, component, variable) DO UPDATE SET
                 operator_value = excluded.operator_value, operator_status = excluded.operator_status,
                 operator_at = excluded.operator_at""",
            (charger_id, component, variable, value, status, at))
