"""The journal's signed meter values (edge/ocpp/signed_values.py): the SignedData readings kept exactly
as sent with their transaction, and each charger's meter public key with where it came from. The
charge records read both (cdrs.py).
"""

from __future__ import annotations

from typing import Any

from edge.journal.base import StoreBase


class SignedValueStore(StoreBase):
    def keep_signed_values(self, charger_id: str, connector_id: int, transaction_id: int | None,
                           values: list[dict[str, Any]], at: str) -> None:
        """values: timestamp, context, measurand, encoding, signed_data each."""
        self.conn.executemany(
            "INSERT INTO signed_meter_values (charger_id, connector_id, transaction_id, timestamp, context, "
            "measurand, encoding, signed_data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(charger_id, connector_id, transaction_id, v["timestamp"], v["context"], v["measurand"], v["encoding"],
              v["signed_data"], at) for v in values])

    def set_meter_key(self, charger_id: str, public_key: str, source: str, at: str) -> None:
        """The charger's meter key (hex DER); `at` changes only when the key or its source does."""
        self.conn.execute(
            "INSERT INTO meter_public_keys (charger_id, public_key, source, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (charger_id) DO UPDATE SET public_key = excluded.public_key, source = excluded.source, "
            "at = excluded.at WHERE public_key != excluded.public_key OR source != excluded.source",
            (charger_id, public_key, source, at))

    def meter_keys(self) -> dict[str, dict[str, str]]:
        """charger id -> public_key, source, at."""
        return {r[0]: {"public_key": r[1], "source": r[2], "at": r[3]} for r in self.conn.execute(
            "SELECT charger_id, public_key, source, at FROM meter_public_keys")}

    def signing_chargers(self) -> list[str]:
        """Chargers that ever sent a signed value."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT charger_id FROM signed_meter_values")]
