"""OCPP 2.0.1 words read into the site's domain words, and the bounds its
schema leaves open (pure functions and tables; the session calls them).

Choices where the issue is silent are explained in docs/ocpp-201.md.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ocpp.v201 import call as call201

from edge.ocpp import boundary, quick_schema
from edge.ocpp.quick_schema import QuickValidator, inline_references, quick_check  # noqa: F401 (their home was here)
from edge.ocpp.v201 import security
from edge.stations.model import ConnectorStatus

# 2.0.1's ConnectorStatusEnumType -> the site's status (1.6's finer words, edge/stations/model.py).
# Occupied says "a cable or a transaction", not what the car does: it reads as Preparing
# (in use, not known to draw) until a TransactionEvent's chargingState says more.
STATUSES: dict[str, ConnectorStatus] = {
    "Available": ConnectorStatus.AVAILABLE,
    "Occupied": ConnectorStatus.PREPARING,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}

# The site keys a station's "connector" by EVSE (edge/stations/model.py). An EVSE with several
# connectors reads as the connector that says most about whether a driver can use it: one
# in use makes the EVSE in use (2.0.1 makes its siblings Unavailable meanwhile), and one
# free connector makes it free even when a sibling is broken.
_EVSE_PRECEDENCE = ("Occupied", "Reserved", "Available", "Unavailable", "Faulted")

# 2.0.1's StatusNotification carries no error code (faults are told by NotifyEvent); the
# journal's hardware log keeps Faulted under 1.6's catch-all, so a fault is never lost.
NO_ERROR, FAULT = "NoError", "OtherError"


def evse_status(connectors: Mapping[int, str]) -> str:
    """The 2.0.1 status of an EVSE, from its connectors' last reported ones."""
    reported = set(connectors.values())
    return next((s for s in _EVSE_PRECEDENCE if s in reported), "Unavailable")


def connector_status(status_201: str) -> ConnectorStatus:
    return STATUSES[status_201]


def error_code(status_201: str) -> str:
    return FAULT if status_201 == "Faulted" else NO_ERROR


def boot_info(charging_station: Mapping[str, Any]) -> dict[str, Any]:
    """The station's BootNotification chargingStation (snake_case) as the journal keeps boot info
    for any station (the same keys as 1.6's; 2.0.1 reports no meter type or serial)."""
    modem = charging_station.get("modem") or {}
    return {"vendor": charging_station["vendor_name"], "model": charging_station["model"],
            "serial_number": charging_station.get("serial_number"),
            "firmware_version": charging_station.get("firmware_version"),
            "iccid": modem.get("iccid"), "imsi": modem.get("imsi"), "meter_type": None,
            "meter_serial_number": None}


# -- the boundary: 2.0.1's bounds, beside the shared ones ------------------------------------------
#
# edge.ocpp.boundary.check_call runs first for every version (frame depth, valid Unicode, and its
# rules where 2.0.1 shares a message and a field with 1.6: StatusNotification's connectorId and
# timestamp). These are what 2.0.1 adds: its EVSE addressing.

EVSE = boundary.integer(1, boundary.MAX_CONNECTOR_ID, "EVSE id; EVSEs are numbered from 1")
CONNECTOR_OF_EVSE = boundary.integer(1, boundary.MAX_CONNECTOR_ID, "connector id within its EVSE, from 1")

SEQ_NO = boundary.integer(0, boundary.INT32_MAX, "seqNo counts up from 0")


def evse_of_event(where: str, value: Any, ctx: boundary.Context) -> Any:
    """A TransactionEvent's evse object: its id and connectorId as StatusNotification's."""
    if not isinstance(value, dict):
        return value
    checked = dict(value)
    for name, check in (("id", EVSE), ("connectorId", CONNECTOR_OF_EVSE)):
        if name in checked:
            checked[name] = check(f"{where}.{name}", checked[name], ctx)
    return checked


def number_unusable(sample: dict[str, Any]) -> str | None:
    """Why a 2.0.1 sampled value (a JSON number) is unusable, or None (a wrong type is the schema's)."""
    number = sample.get("value")
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        return None
    if not (math.isfinite(number) and abs(number) <= boundary.MAX_SAMPLE_MAGNITUDE):
        return f"is not a finite number within +-{boundary.MAX_SAMPLE_MAGNITUDE:g}"
    return None


# 2.0.1's meterValue: times as sample times; a value that is not a sane number is left out, never the event.
meter_values = boundary.meter_values_by(number_unusable)


RULES: dict[str, dict[str, boundary.Check]] = {
    "StatusNotification": {"evseId": EVSE, "connectorId": CONNECTOR_OF_EVSE},
    "TransactionEvent": {"timestamp": boundary.date_time, "seqNo": SEQ_NO, "evse": evse_of_event,
                         "meterValue": meter_values},
    # J/K (edge/ocpp/v201/services.py): MeterValues' samples as TransactionEvent's, its evseId 0 the main
    # meter; the car's needs are for an EVSE, never 0.
    "MeterValues": {"evseId": boundary.integer(0, boundary.MAX_CONNECTOR_ID, "EVSE id, 0 the main meter"),
                    "meterValue": meter_values},
    "NotifyEVChargingNeeds": {"evseId": EVSE},
}


def check_call(action: str, payload: Any, arrived: str) -> boundary.Checked:
    """A 2.0.1 Call's payload against RULES: raises the OCPPError to answer with, or
    the values to use (fields of the wrong JSON type are left to the schema)."""
    rules = RULES.get(action)
    if not rules or not isinstance(payload, dict):
        return boundary.Checked(payload)
    ctx = boundary.Context(arrived, [])
    clean = dict(payload)
    for name in rules.keys() & clean.keys():
        clean[name] = rules[name](name, clean[name], ctx)
    return boundary.Checked(clean, ctx.repairs)


# -- requests the core words in 1.6 -------------------------------------------------------------------
#
# The core's requests reach a 2.0.1 station worded by its own adapter (edge/ocpp/v201/control.py). What
# still arrives as a 1.6 message is load management's (edge/dlm sends through Commands.send) and the
# operator's raw commands: those whose 2.0.1 twin means the same are passed on as it; the others are
# refused as NotSupported (logged in the actions log, not retried).

# 1.6 TriggerMessage's requestedMessage -> the 2.0.1 message that means the same (F06): 1.6's
# DiagnosticsStatusNotification reports a diagnostics upload, 2.0.1's LogStatusNotification a log upload.
TRIGGERABLE = {"BootNotification": "BootNotification", "Heartbeat": "Heartbeat",
               "StatusNotification": "StatusNotification", "MeterValues": "MeterValues",
               "FirmwareStatusNotification": "FirmwareStatusNotification",
               "DiagnosticsStatusNotification": "LogStatusNotification"}


def as_v201_request(payload: Any) -> Any | None:
    """A 1.6 request as its 2.0.1 twin, or None when it has none that means the same."""
    twin = security.as_v201_request(payload)      # block A's: the CA store, ExtendedTriggerMessage
    if twin is not None:
        return twin
    if type(payload).__name__ == "TriggerMessage" and payload.requested_message in TRIGGERABLE:
        connector = getattr(payload, "connector_id", None)
        return call201.TriggerMessage(requested_message=TRIGGERABLE[payload.requested_message],
                                      evse={"id": connector} if connector else None)
    # The site's connector is the EVSE (one connector each, as far as the core knows: connectorId 1).
    if type(payload).__name__ == "UnlockConnector":
        return call201.UnlockConnector(evse_id=payload.connector_id, connector_id=1)
    if type(payload).__name__ == "ChangeAvailability":
        return call201.ChangeAvailability(operational_status=payload.type,
                                          evse={"id": payload.connector_id} if payload.connector_id else None)
    if type(payload).__name__ == "ClearCache":
        return call201.ClearCache()
    return None


def is_v201_request(payload: Any) -> bool:
    return type(payload).__module__ == call201.__name__


# -- speed: a quick yes before the library's 2.0.1 schema check -------------------------------------------
#
# edge/ocpp/quick_schema.py (shared with 1.6): the library's validators of the messages a station sends
# most, and of the answers to them, say yes quickly to a valid payload and leave the rest to jsonschema.

# The messages a station sends all the time (and the answers to them): what a site with hundreds pays for.
FREQUENT = ("TransactionEvent", "MeterValues", "StatusNotification", "Heartbeat", "Authorize", "NotifyEvent")


def install_quick_validators(actions: tuple[str, ...] = FREQUENT) -> list[str]:
    """QuickValidators for the 2.0.1 schemas of `actions` in the library's cache (quick_schema.install)."""
    return quick_schema.install("2.0.1", actions)


install_quick_validators()
