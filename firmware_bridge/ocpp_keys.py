"""The bridge's OCPP configuration keys (GetConfiguration / ChangeConfiguration).

Only keys the bridge acts on; the rest of the 1.6 catalogue (local lists,
authorization cache, ...) has no meaning for a wallbox without a card
reader and is answered NotSupported. Keys the edge changes are kept in the
store and survive a restart, as on any charge point.
"""

from __future__ import annotations

from firmware_bridge import smart_charging
from firmware_bridge.store import Store
from simulator.configuration import Configuration, Key

_KEY = "configuration"
MEASURANDS = "Energy.Active.Import.Register,Current.Import,Voltage,Power.Active.Import,Current.Offered"


def _defaults(meter_interval: float) -> dict[str, Key]:
    rw, ro = False, True
    return {
        "AuthorizeRemoteTxRequests": Key("false", ro, "bool"),
        "ChargeProfileMaxStackLevel": Key(str(smart_charging.MAX_STACK_LEVEL), ro, "int"),
        "ChargingScheduleAllowedChargingRateUnit": Key("Current", ro),
        "ChargingScheduleMaxPeriods": Key(str(smart_charging.MAX_PERIODS), ro, "int"),
        # Seconds a remote start waits for the vehicle to be plugged in.
        "ConnectionTimeOut": Key("60", rw, "int"),
        "GetConfigurationMaxKeys": Key("50", ro, "int"),
        "HeartbeatInterval": Key("300", rw, "number"),
        "MaxChargingProfilesInstalled": Key(str(smart_charging.MAX_INSTALLED), ro, "int"),
        "MeterValueSampleInterval": Key(f"{meter_interval:g}", rw, "number"),
        "MeterValuesSampledData": Key(MEASURANDS, ro, "measurands"),
        "NumberOfConnectors": Key("1", ro, "int"),
        "StopTransactionOnEVSideDisconnect": Key("true", ro, "bool"),
        "StopTransactionOnInvalidId": Key("true", rw, "bool"),
        "SupportedFeatureProfiles": Key("Core,SmartCharging,RemoteTrigger", ro),
    }


class OcppKeys(Configuration):
    def __init__(self, store: Store, *, meter_interval: float) -> None:
        super().__init__(_defaults(meter_interval))
        self._store = store
        for key, value in store.setting(_KEY, {}).items():
            if self._name(key) is not None:  # a key an older release had may be gone
                super().set(key, value)

    def change(self, key: str, value: str) -> str:
        status = super().change(key, value)
        if status == "Accepted":
            self._persist()
        return status

    def set(self, key: str, value: str) -> None:
        super().set(key, value)
        self._persist()

    def _persist(self) -> None:
        known, _ = self.get()
        self._store.put_setting(_KEY, {k["key"]: k["value"] for k in known if not k["readonly"]})
