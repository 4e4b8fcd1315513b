"""The journal's chargers and their connectors: registration, adoption, last seen, firmware
and diagnostics status, and each connector's last StatusNotification; strangers' rows (ids neither
configured nor adopted, edge/ocpp/strangers.py) and their forgetting.

record_status writes the connector's row and, for a fault, a line of the hardware log: it lives
here because the connector's row is what it keeps; the hardware log is read through logs.py.
forget_strangers drops a forgotten stranger's network and communication log rows with its row.
"""

from __future__ import annotations

import json
from typing import Any

from edge.journal.base import CHARGER_LOGS, StoreBase, _rows

# What a BootNotification tells of a charger, by the chargers table's column names.
BOOT_FIELDS = ("vendor", "model", "serial_number", "firmware_version", "iccid", "imsi",
               "meter_type", "meter_serial_number")
# Rows of `chargers` that are strangers: never adopted, never accepted, not in the directory.
_STRANGER_ROWS = ("SELECT id FROM chargers WHERE adopted_at IS NULL AND registration != 'accepted' "
                  "AND id NOT IN (SELECT value FROM json_each(:known))")


class ChargerStore(StoreBase):
    def record_boot(self, charger_id: str, registration: str, info: dict[str, str | None], at: str) -> None:
        values = [info.get(f) for f in BOOT_FIELDS]
        self.conn.execute(
            f"""INSERT INTO chargers (id, registration, first_seen, last_boot, last_seen, {", ".join(BOOT_FIELDS)})
                VALUES (?, ?, ?, ?, ?, {", ".join("?" * len(BOOT_FIELDS))})
                ON CONFLICT (id) DO UPDATE SET
                  registration = excluded.registration, last_boot = excluded.last_boot,
                  last_seen = excluded.last_seen,
                  {", ".join(f"{f} = excluded.{f}" for f in BOOT_FIELDS)}""",
            (charger_id, registration, at, at, at, *values),
        )

    def remember_stranger(self, charger_id: str, registration: str, info: dict[str, Any], at: str,
                          known: list[str], keep: int, before: str) -> None:
        """A stranger's BootNotification: its row (newest boot in `last_seen`, no `last_boot`, so no
        outbox trigger fires), then the strangers beyond the newest `keep` or seen before `before` are
        forgotten (forget_strangers); `known`: the site's charger ids."""
        values = [info.get(f) for f in BOOT_FIELDS]
        self.conn.execute(
            f"""INSERT INTO chargers (id, registration, first_seen, last_seen, {", ".join(BOOT_FIELDS)})
                VALUES (?, ?, ?, ?, {", ".join("?" * len(BOOT_FIELDS))})
                ON CONFLICT (id) DO UPDATE SET registration = excluded.registration, last_seen = excluded.last_seen,
                  {", ".join(f"{f} = excluded.{f}" for f in BOOT_FIELDS)}""",
            (charger_id, registration, at, at, *values))
        self.forget_strangers(known, keep, before)

    def forget_strangers(self, known: list[str], keep: int, before: str) -> list[str]:
        """Drops stranger rows beyond the newest `keep` or last seen before `before`, with their logs;
        `known`: the site's charger ids. -> the ids forgotten."""
        args = {"known": json.dumps(known), "keep": keep, "before": before}
        forgotten = [row[0] for row in self.conn.execute(
            f"""SELECT id FROM chargers WHERE id IN ({_STRANGER_ROWS}) AND (last_seen < :before OR id NOT IN (
                  SELECT id FROM chargers WHERE id IN ({_STRANGER_ROWS}) ORDER BY last_seen DESC, id LIMIT :keep))""",
            args)]
        if forgotten:
            doomed = json.dumps(forgotten)
            for table in CHARGER_LOGS:
                self.conn.execute(f"DELETE FROM {table} WHERE charger_id IN (SELECT value FROM json_each(?))",
                                  (doomed,))
            self.conn.execute("DELETE FROM chargers WHERE id IN (SELECT value FROM json_each(?))", (doomed,))
        return forgotten

    def adopt_charger(self, charger_id: str, at: str) -> bool:
        cur = self.conn.execute(
            "UPDATE chargers SET registration = 'accepted', adopted_at = ? WHERE id = ? AND registration != 'accepted'",
            (at, charger_id),
        )
        return cur.rowcount == 1

    def adopted_chargers(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM chargers WHERE adopted_at IS NOT NULL")}

    def touch_chargers(self, last_seen: dict[str, str]) -> None:
        self.conn.executemany(
            "UPDATE chargers SET last_seen = ? WHERE id = ?", [(at, cid) for cid, at in last_seen.items()]
        )

    def ensure_charger(self, charger_id: str, at: str) -> None:
        # A configured charger that talks before (or without) a BootNotification
        # after our restart still needs a row, e.g. for its logs and connectors.
        self.conn.execute(
            "INSERT INTO chargers (id, registration, first_seen, last_seen) VALUES (?, 'accepted', ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (charger_id, at, at),
        )

    def record_firmware_status(self, charger_id: str, kind: str, status: str, at: str) -> None:
        column = {"firmware": "firmware_status", "diagnostics": "diagnostics_status"}[kind]
        self.conn.execute(
            f"UPDATE chargers SET {column} = ?, {column}_at = ? WHERE id = ?", (status, at, charger_id)
        )

    def chargers(self) -> list[dict[str, Any]]:
        return _rows(self.conn.execute("SELECT * FROM chargers ORDER BY id"))

    def connectors(self, charger_id: str | None = None) -> list[dict[str, Any]]:
        if charger_id is None:
            return _rows(self.conn.execute("SELECT * FROM connectors ORDER BY charger_id, connector_id"))
        return _rows(self.conn.execute(
            "SELECT * FROM connectors WHERE charger_id = ? ORDER BY connector_id", (charger_id,)))

    # -- status -------------------------------------------------------------

    def record_status(self, charger_id: str, connector_id: int, status: str, error_code: str,
                      info: str | None, vendor_id: str | None, vendor_error_code: str | None,
                      charger_time: str | None, at: str) -> None:
        self.conn.execute(
            """INSERT INTO connectors (charger_id, connector_id, status, error_code, info, vendor_id,
                                       vendor_error_code, charger_time, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (charger_id, connector_id) DO UPDATE SET
                 status = excluded.status, error_code = excluded.error_code, info = excluded.info,
                 vendor_id = excluded.vendor_id, vendor_error_code = excluded.vendor_error_code,
                 charger_time = excluded.charger_time, updated_at = excluded.updated_at""",
            (charger_id, connector_id, status, error_code, info, vendor_id, vendor_error_code, charger_time, at),
        )
        if error_code != "NoError" or status == "Faulted":
            self.conn.execute(
                """INSERT INTO hardware_log (at, charger_id, connector_id, status, error_code, info,
                                             vendor_id, vendor_error_code, charger_time)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (at, charger_id, connector_id, status, error_code, info, vendor_id, vendor_error_code, charger_time),
            )
