"""The charging profiles the edge installed on the bridge, kept across restarts.

Which limit applies when is decided by `simulator.profiles` (pure, with
table tests of its own): the same OCPP stacking rules the simulated charge
points follow, so the load manager meets one reading of the spec. This
module checks what the bridge accepts and keeps the installed profiles in
its store, as a charge point keeps them across a reboot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from firmware_bridge.store import Store
from simulator import profiles

MAX_STACK_LEVEL = 8
MAX_PERIODS = 24
MAX_INSTALLED = 16
_KEY = "charging_profiles"


class ChargingProfiles:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._raw: list[dict[str, Any]] = store.setting(_KEY, [])
        self.installed = [profiles.Installed(r["connector_id"], profiles.parse_profile(
            r["data"], received=profiles.parse_time(r["received"]))) for r in self._raw]

    def install(self, connector_id: int, data: Mapping[str, Any], *, received: datetime,
                transaction_id: int | None, in_transaction: bool) -> str:
        """SetChargingProfile: Accepted or Rejected."""
        try:
            profile = profiles.parse_profile(data, received=received)
        except ValueError:
            return "Rejected"
        if (connector_id not in (0, 1) or profile.stack_level > MAX_STACK_LEVEL
                or len(profile.periods) > MAX_PERIODS
                or (profile.purpose == profiles.CHARGE_POINT_MAX and connector_id != 0)
                or (profile.purpose == profiles.TX and (connector_id != 1 or not in_transaction))
                or (profile.purpose == profiles.TX and transaction_id is not None
                    and profile.transaction_id not in (None, transaction_id))):
            # transaction_id None: the StartTransaction is on its way and the edge, which has its answer
            # first, sends the TxProfile for it before that answer reaches us. Taken; a profile for
            # another transaction is dropped when the id arrives (for_transaction).
            return "Rejected"
        new = profiles.Installed(connector_id, profile)
        installed = profiles.install(self.installed, new)
        if len(installed) > MAX_INSTALLED:
            return "Rejected"
        kept_ids = {i.profile.id for i in installed}
        self._raw = [r for r in self._raw if r["profile_id"] in kept_ids and r["profile_id"] != profile.id]
        self._raw.append({"profile_id": profile.id, "connector_id": connector_id, "data": dict(data),
                          "received": received.isoformat()})
        self._save(installed)
        return "Accepted"

    def clear(self, **criteria: Any) -> int:
        """ClearChargingProfile (see profiles.clear); returns how many went."""
        kept, removed = profiles.clear(self.installed, **criteria)
        if removed:
            self._save(kept)
        return removed

    def for_transaction(self, transaction_id: int) -> None:
        """The edge gave the running transaction its id: TxProfiles taken for another one go."""
        kept = [i for i in self.installed if i.profile.purpose != profiles.TX
                or i.profile.transaction_id in (None, transaction_id)]
        if len(kept) != len(self.installed):
            self._save(kept)

    def end_of_transaction(self) -> None:
        """A TxProfile lives as long as its transaction."""
        self.clear(connector_id=1, purpose=profiles.TX)

    def limit(self, at: datetime, tx: profiles.TxRef | None, *, voltage: float, phases: int) -> float | None:
        found = profiles.active_limit(self.installed, 1, at, tx, voltage=voltage, phases=phases)
        return found.amps if found else None

    def composite(self, duration: int, unit: str, at: datetime, tx: profiles.TxRef | None, *, voltage: float,
                  phases: int, ceiling_amps: float) -> list[profiles.Period]:
        return profiles.composite(self.installed, 1, at, duration, tx, voltage=voltage, phases=phases, unit=unit,
                                  ceiling_amps=ceiling_amps)

    def _save(self, installed: list[profiles.Installed]) -> None:
        ids = {i.profile.id for i in installed}
        self._raw = [r for r in self._raw if r["profile_id"] in ids]
        self._store.put_setting(_KEY, self._raw)
        self.installed = installed
