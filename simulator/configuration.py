"""The charge point's configuration keys, as GetConfiguration and ChangeConfiguration see them.

Values are kept as the strings OCPP carries; each key knows its kind, so a
ChangeConfiguration with a value the key cannot hold is Rejected the way a
strict wallbox would, instead of breaking the simulator later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ocpp.v16.enums import Measurand

MEASURANDS = frozenset(m.value for m in Measurand)
DEFAULT_SAMPLED = ("Current.Import,Voltage,Power.Active.Import,Energy.Active.Import.Register,"
                   "SoC,Current.Offered")


@dataclass(frozen=True)
class Key:
    value: str
    readonly: bool = False
    # "int", "number" (intervals: fractions of a second keep tests fast), "bool",
    # "measurands" (comma-separated Measurand values) or "string".
    kind: str = "string"


def _valid(kind: str, value: str) -> bool:
    try:
        if kind == "int":
            return int(value) >= 0
        if kind == "number":
            return float(value) >= 0
    except ValueError:
        return False
    if kind == "bool":
        return value.lower() in ("true", "false")
    if kind == "measurands":
        return all(item.strip() in MEASURANDS for item in value.split(",") if item.strip())
    return True


def _text(number: float) -> str:
    return f"{number:g}"


def default_keys(*, connectors: int, heartbeat_interval: float, meter_interval: float) -> dict[str, Key]:
    rw, ro = False, True
    return {
        "AllowOfflineTxForUnknownId": Key("false", rw, "bool"),
        "AuthorizationCacheEnabled": Key("true", rw, "bool"),
        "AuthorizeRemoteTxRequests": Key("false", rw, "bool"),
        "ChargeProfileMaxStackLevel": Key("8", ro, "int"),
        # Advertised so the edge learns to send amps; W profiles are still
        # converted, as most wallboxes in the field do.
        "ChargingScheduleAllowedChargingRateUnit": Key("Current", ro),
        "ChargingScheduleMaxPeriods": Key("24", ro, "int"),
        "ClockAlignedDataInterval": Key("0", rw, "number"),
        "ConnectionTimeOut": Key("60", rw, "int"),
        "GetConfigurationMaxKeys": Key("50", ro, "int"),
        "HeartbeatInterval": Key(_text(heartbeat_interval), rw, "number"),
        "LocalAuthListEnabled": Key("true", rw, "bool"),
        "LocalAuthListMaxLength": Key("1000", ro, "int"),
        "LocalAuthorizeOffline": Key("true", rw, "bool"),
        "LocalPreAuthorize": Key("false", rw, "bool"),
        "MaxChargingProfilesInstalled": Key("16", ro, "int"),
        "MeterValueSampleInterval": Key(_text(meter_interval), rw, "number"),
        "MeterValuesAlignedData": Key("Energy.Active.Import.Register", rw, "measurands"),
        "MeterValuesSampledData": Key(DEFAULT_SAMPLED, rw, "measurands"),
        "MeterValuesSampledDataMaxLength": Key("8", ro, "int"),
        "NumberOfConnectors": Key(str(connectors), ro, "int"),
        "ResetRetries": Key("1", rw, "int"),
        "SendLocalListMaxLength": Key("100", ro, "int"),
        "StopTransactionOnEVSideDisconnect": Key("true", rw, "bool"),
        "StopTransactionOnInvalidId": Key("true", rw, "bool"),
        "StopTxnAlignedData": Key("", rw, "measurands"),
        "StopTxnSampledData": Key("Energy.Active.Import.Register,SoC", rw, "measurands"),
        # OCPP 1.6 security whitepaper: 0-3; the simulator connects as its URL and TLS context say.
        "SecurityProfile": Key("1", rw, "int"),
        "SupportedFeatureProfiles": Key(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger", ro),
        "TransactionMessageAttempts": Key("3", rw, "int"),
        "TransactionMessageRetryInterval": Key("10", rw, "number"),
        "UnlockConnectorOnEVSideDisconnect": Key("true", rw, "bool"),
        "WebSocketPingInterval": Key("0", rw, "int"),
    }


class Configuration:
    def __init__(self, keys: dict[str, Key]) -> None:
        self._keys = dict(keys)
        # OCPP keys are CiString: matched without regard to case.
        self._names = {name.lower(): name for name in keys}

    def _name(self, key: str) -> str | None:
        return self._names.get(key.lower())

    def get(self, keys: list[str] | None = None) -> tuple[list[dict], list[str]]:
        """(configurationKey entries, unknownKey names) for GetConfiguration; no keys means all."""
        wanted = list(self._keys) if not keys else keys
        known, unknown = [], []
        for key in wanted:
            name = self._name(key)
            if name is None:
                unknown.append(key)
            else:
                entry = self._keys[name]
                known.append({"key": name, "readonly": entry.readonly, "value": entry.value})
        return known, unknown

    def change(self, key: str, value: str) -> str:
        """ChangeConfiguration status: Accepted, Rejected or NotSupported."""
        name = self._name(key)
        if name is None:
            return "NotSupported"
        entry = self._keys[name]
        if entry.readonly or not _valid(entry.kind, value):
            return "Rejected"
        self._keys[name] = replace(entry, value=value)
        return "Accepted"

    def add(self, key: str, entry: Key) -> None:
        """A key this charger has beyond the defaults (e.g. its meter's public key)."""
        self._keys[key] = entry
        self._names[key.lower()] = key

    def set(self, key: str, value: str) -> None:
        """Set a key from inside the charger (e.g. the interval a BootNotification answer gives)."""
        name = self._name(key)
        if name is None:
            raise KeyError(key)
        self._keys[name] = replace(self._keys[name], value=value)

    def value(self, key: str) -> str:
        name = self._name(key)
        if name is None:
            raise KeyError(key)
        return self._keys[name].value

    def number(self, key: str) -> float:
        return float(self.value(key))

    def flag(self, key: str) -> bool:
        return self.value(key).lower() == "true"

    def items(self, key: str) -> list[str]:
        return [item.strip() for item in self.value(key).split(",") if item.strip()]
