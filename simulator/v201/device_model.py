"""The station's OCPP 2.0.1 device model: components, their variables, and the per-variable answers.

Pure data and functions: GetVariables/SetVariables answer per variable
(Accepted, Rejected, UnknownComponent, UnknownVariable,
NotSupportedAttributeType, RebootRequired) and GetBaseReport's report data
come from here. Only the Actual attribute is kept, as on most AC stations;
asking for Target, MinSet or MaxSet gets NotSupportedAttributeType.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

MEASURANDS = ("Current.Import", "Current.Offered", "Energy.Active.Import.Register", "Power.Active.Import", "SoC",
              "Voltage")
TX_POINTS = ("ParkingBayOccupancy", "EVConnected", "Authorized", "DataSigned", "PowerPathClosed", "EnergyTransfer")


@dataclass(frozen=True)
class Variable:
    value: str
    data_type: str = "string"  # string, decimal, integer, dateTime, boolean, OptionList, SequenceList, MemberList
    mutability: str = "ReadWrite"  # ReadOnly, WriteOnly, ReadWrite
    values_list: tuple[str, ...] = ()
    reboot_required: bool = False  # a new value applies after the next reboot
    unit: str | None = None


# (component name, evse id or None, variable name, variable instance or None)
Key = tuple[str, int | None, str, str | None]


def _int(value: int) -> Variable:
    return Variable(str(value), "integer")


def _flag(value: bool, mutability: str = "ReadWrite") -> Variable:
    return Variable("true" if value else "false", "boolean", mutability)


def _members(value: str, allowed: tuple[str, ...]) -> Variable:
    return Variable(value, "MemberList", values_list=allowed)


def _ro(value: str, data_type: str = "string") -> Variable:
    return Variable(value, data_type, "ReadOnly")


def standard(station_id: str, *, evses: int, heartbeat_interval: int, tx_updated_interval: int,
             max_current: float, phases: int, security_profile: int, report_items: int) -> dict[Key, Variable]:
    """The variables a 2.0.1 AC station with `evses` one-connector EVSEs offers."""
    v: dict[Key, Variable] = {
        ("OCPPCommCtrlr", None, "HeartbeatInterval", None): _int(heartbeat_interval),
        ("OCPPCommCtrlr", None, "MessageTimeout", "Default"): _int(30),
        ("OCPPCommCtrlr", None, "MessageAttempts", "TransactionEvent"): _int(3),
        ("OCPPCommCtrlr", None, "MessageAttemptInterval", "TransactionEvent"): _int(10),
        ("OCPPCommCtrlr", None, "NetworkConfigurationPriority", None):
            Variable("0", "SequenceList", values_list=("0", "1", "2"), reboot_required=True),
        ("OCPPCommCtrlr", None, "NetworkProfileConnectionAttempts", None): _int(3),
        ("OCPPCommCtrlr", None, "OfflineThreshold", None): _int(60),
        ("OCPPCommCtrlr", None, "ResetRetries", None): _int(2),
        ("OCPPCommCtrlr", None, "WebSocketPingInterval", None): Variable("0", "integer", reboot_required=True),
        ("DeviceDataCtrlr", None, "ItemsPerMessage", "GetReport"): _ro(str(report_items), "integer"),
        ("DeviceDataCtrlr", None, "ItemsPerMessage", "GetVariables"): _ro("50", "integer"),
        ("DeviceDataCtrlr", None, "ItemsPerMessage", "SetVariables"): _ro("50", "integer"),
        ("DeviceDataCtrlr", None, "BytesPerMessage", "GetReport"): _ro("65000", "integer"),
        ("SampledDataCtrlr", None, "Enabled", None): _flag(True),
        ("SampledDataCtrlr", None, "TxUpdatedInterval", None): _int(tx_updated_interval),
        ("SampledDataCtrlr", None, "TxUpdatedMeasurands", None):
            _members("Current.Import,Energy.Active.Import.Register,Power.Active.Import", MEASURANDS),
        ("SampledDataCtrlr", None, "TxStartedMeasurands", None):
            _members("Energy.Active.Import.Register", MEASURANDS),
        ("SampledDataCtrlr", None, "TxEndedMeasurands", None):
            _members("Energy.Active.Import.Register", MEASURANDS),
        ("SampledDataCtrlr", None, "TxEndedInterval", None): _int(0),
        ("AlignedDataCtrlr", None, "Enabled", None): _flag(True),
        ("AlignedDataCtrlr", None, "Interval", None): _int(0),
        ("AlignedDataCtrlr", None, "Measurands", None): _members("Energy.Active.Import.Register", MEASURANDS),
        ("AlignedDataCtrlr", None, "TxEndedInterval", None): _int(0),
        ("AlignedDataCtrlr", None, "TxEndedMeasurands", None): _members("Energy.Active.Import.Register", MEASURANDS),
        ("TxCtrlr", None, "TxStartPoint", None): _members("PowerPathClosed", TX_POINTS),
        ("TxCtrlr", None, "TxStopPoint", None): _members("EVConnected,Authorized", TX_POINTS),
        ("TxCtrlr", None, "EVConnectionTimeOut", None): _int(60),
        ("TxCtrlr", None, "StopTxOnEVSideDisconnect", None): _flag(True),
        ("TxCtrlr", None, "StopTxOnInvalidId", None): _flag(True),
        ("TxCtrlr", None, "MaxEnergyOnInvalidId", None): _int(0),
        ("AuthCtrlr", None, "Enabled", None): _flag(True),
        ("AuthCtrlr", None, "AuthorizeRemoteStart", None): _flag(False),
        ("AuthCtrlr", None, "LocalAuthorizeOffline", None): _flag(True),
        ("AuthCtrlr", None, "LocalPreAuthorize", None): _flag(False),
        ("AuthCtrlr", None, "OfflineTxForUnknownIdEnabled", None): _flag(False),
        ("AuthCacheCtrlr", None, "Enabled", None): _flag(True),
        ("AuthCacheCtrlr", None, "LifeTime", None): _int(86400),
        ("LocalAuthListCtrlr", None, "Enabled", None): _flag(True),
        ("LocalAuthListCtrlr", None, "Entries", None): _ro("0", "integer"),
        ("LocalAuthListCtrlr", None, "ItemsPerMessage", None): _ro("100", "integer"),
        ("LocalAuthListCtrlr", None, "BytesPerMessage", None): _ro("65000", "integer"),
        ("LocalAuthListCtrlr", None, "Storage", None): _ro("1000", "integer"),
        ("SmartChargingCtrlr", None, "Enabled", None): _flag(True),
        ("SmartChargingCtrlr", None, "Entries", "ChargingProfiles"): _ro("0", "integer"),
        ("SmartChargingCtrlr", None, "LimitChangeSignificance", None): Variable("1.0", "decimal"),
        ("SmartChargingCtrlr", None, "PeriodsPerSchedule", None): _ro("24", "integer"),
        ("SmartChargingCtrlr", None, "ProfileStackLevel", None): _ro("8", "integer"),
        ("SmartChargingCtrlr", None, "RateUnit", None): Variable("A,W", "MemberList", "ReadOnly", ("A", "W")),
        ("SmartChargingCtrlr", None, "ExternalControlSignalsEnabled", None): _flag(False),
        ("SecurityCtrlr", None, "SecurityProfile", None): _ro(str(security_profile), "integer"),
        ("SecurityCtrlr", None, "Identity", None): _ro(station_id),
        ("SecurityCtrlr", None, "OrganizationName", None): Variable("SimOrg"),
        ("SecurityCtrlr", None, "CertificateEntries", None): _ro("0", "integer"),
        ("SecurityCtrlr", None, "BasicAuthPassword", None): Variable("", "string", "WriteOnly", reboot_required=True),
        ("ChargingStation", None, "AvailabilityState", None): _ro("Available", "OptionList"),
        ("ChargingStation", None, "Available", None): _ro("true", "boolean"),
        ("ChargingStation", None, "SupplyPhases", None): _ro(str(phases), "integer"),
    }
    for evse in range(1, evses + 1):
        v[("EVSE", evse, "AvailabilityState", None)] = _ro("Available", "OptionList")
        v[("EVSE", evse, "Available", None)] = _ro("true", "boolean")
        v[("EVSE", evse, "Power", None)] = replace(_ro(f"{max_current * 230 * phases:.0f}", "decimal"), unit="W")
        v[("EVSE", evse, "SupplyPhases", None)] = _ro(str(phases), "integer")
        v[("Connector", evse, "ConnectorType", None)] = _ro("cType2")
    return v


@dataclass
class DeviceModel:
    variables: dict[Key, Variable]
    # What was written with RebootRequired and applies after the next reboot.
    after_reboot: dict[Key, str] = field(default_factory=dict)

    def get(self, component: str, variable: str, *, evse: int | None = None, instance: str | None = None) -> str:
        """A known variable's Actual value, for the station's own use."""
        return self.variables[(component, evse, variable, instance)].value

    def number(self, component: str, variable: str, instance: str | None = None) -> float:
        return float(self.get(component, variable, instance=instance))

    def flag(self, component: str, variable: str) -> bool:
        return self.get(component, variable) == "true"

    def members(self, component: str, variable: str) -> list[str]:
        return [m for m in self.get(component, variable).split(",") if m]

    def put(self, component: str, variable: str, value: str, *, evse: int | None = None,
            instance: str | None = None) -> None:
        """The station itself changing a value (a read-only one too: the number of list entries)."""
        key = (component, evse, variable, instance)
        self.variables[key] = replace(self.variables[key], value=value)

    def reboot(self) -> None:
        for key, value in self.after_reboot.items():
            self.variables[key] = replace(self.variables[key], value=value)
        self.after_reboot.clear()

    def _find(self, component: Mapping[str, Any], variable: Mapping[str, Any]) -> tuple[Key | None, str | None]:
        """The key, or None with UnknownComponent/UnknownVariable."""
        name, evse = component.get("name"), (component.get("evse") or {}).get("id")
        if component.get("instance") is not None or not any(k[0] == name and k[1] == evse for k in self.variables):
            return None, "UnknownComponent"
        key = (name, evse, variable.get("name"), variable.get("instance"))
        return (key, None) if key in self.variables else (None, "UnknownVariable")

    def get_variable(self, item: Mapping[str, Any]) -> dict:
        """One GetVariableResult (snake_case) for one GetVariableData."""
        component, variable = item["component"], item["variable"]
        attribute_type = item.get("attribute_type") or "Actual"
        result = {"attribute_type": attribute_type, "component": component, "variable": variable}
        key, unknown = self._find(component, variable)
        if key is None:
            return {**result, "attribute_status": unknown}
        if attribute_type != "Actual":
            return {**result, "attribute_status": "NotSupportedAttributeType"}
        found = self.variables[key]
        if found.mutability == "WriteOnly":
            return {**result, "attribute_status": "Rejected"}
        return {**result, "attribute_status": "Accepted", "attribute_value": found.value}

    def set_variable(self, item: Mapping[str, Any]) -> tuple[dict, Key | None]:
        """One SetVariableResult (snake_case) for one SetVariableData, and the key that changed now."""
        component, variable = item["component"], item["variable"]
        attribute_type = item.get("attribute_type") or "Actual"
        result = {"attribute_type": attribute_type, "component": component, "variable": variable}
        key, unknown = self._find(component, variable)
        if key is None:
            return {**result, "attribute_status": unknown}, None
        if attribute_type != "Actual":
            return {**result, "attribute_status": "NotSupportedAttributeType"}, None
        found, value = self.variables[key], str(item["attribute_value"])
        problem = "read-only" if found.mutability == "ReadOnly" else invalid(found, value)
        if problem:
            return {**result, "attribute_status": "Rejected",
                    "attribute_status_info": {"reason_code": "InvalidValue", "additional_info": problem[:512]}}, None
        if found.reboot_required:
            self.after_reboot[key] = value
            return {**result, "attribute_status": "RebootRequired"}, None
        self.variables[key] = replace(found, value=value)
        return {**result, "attribute_status": "Accepted"}, key

    def report(self, base: str) -> list[dict]:
        """GetBaseReport's reportData (snake_case): every variable, or only the writable ones, or availability."""
        chosen: Iterable[tuple[Key, Variable]] = self.variables.items()
        if base == "ConfigurationInventory":
            chosen = [(k, v) for k, v in chosen if v.mutability != "ReadOnly"]
        elif base == "SummaryInventory":
            chosen = [(k, v) for k, v in chosen if k[2] in ("AvailabilityState", "Available")]
        return [report_data(key, found) for key, found in chosen]


def invalid(found: Variable, value: str) -> str:
    """Why `value` cannot be written to `found` ("" when it can)."""
    if len(value) > 1000:
        return "longer than 1000 characters"
    if found.data_type == "integer":
        try:
            if int(value) < 0:
                return "must not be negative"
        except ValueError:
            return f"{value!r} is not an integer"
    elif found.data_type == "decimal":
        try:
            float(value)
        except ValueError:
            return f"{value!r} is not a decimal"
    elif found.data_type == "boolean" and value not in ("true", "false"):
        return f"{value!r} is not true or false"
    elif found.data_type == "MemberList":
        unknown = [m for m in value.split(",") if m not in found.values_list]
        if unknown:
            return f"not in the values list: {','.join(unknown)}"
    elif found.data_type == "OptionList" and found.values_list and value not in found.values_list:
        return f"{value!r} is not in the values list"
    return ""


def report_data(key: Key, found: Variable) -> dict:
    name, evse, variable, instance = key
    component: dict[str, Any] = {"name": name}
    if evse is not None:
        component["evse"] = {"id": evse, **({"connector_id": 1} if name == "Connector" else {})}
    attribute: dict[str, Any] = {"type": "Actual", "mutability": found.mutability, "persistent": True,
                                 "constant": found.mutability == "ReadOnly"}
    if found.mutability != "WriteOnly":  # a password is never reported
        attribute["value"] = found.value
    characteristics: dict[str, Any] = {"data_type": found.data_type, "supports_monitoring": False}
    if found.values_list:
        characteristics["values_list"] = ",".join(found.values_list)
    if found.unit:
        characteristics["unit"] = found.unit
    return {"component": component, "variable": {"name": variable, **({"instance": instance} if instance else {})},
            "variable_attribute": [attribute], "variable_characteristics": characteristics}
