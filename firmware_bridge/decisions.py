"""What the bridge decides, as pure functions over plain data (time passed in).

- `connector_status`: what the wallbox reports -> the OCPP status and error code.
- `charging_amps` and `wallbox_command`: the charging profile's limit -> what
  the wallbox is told: rounded down, never above the profile or the hardware,
  below the 6 A minimum of IEC 61851 the wallbox sleeps instead.
- `transaction_step`: when a transaction starts and stops.

These are where a mistake costs: a fuse tripped by a current above the
limit, or energy charged to nobody. They have table tests of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.drivers.base import Fault, FaultKind, Mode, Pilot

MIN_CURRENT = 6  # amps: IEC 61851-1, the lowest current a pilot signal may offer

ERROR_CODES = {
    FaultKind.GROUND: "GroundFailure",
    FaultKind.RELAY: "PowerSwitchFailure",
    FaultKind.OVER_TEMPERATURE: "HighTemperature",
    FaultKind.OVER_CURRENT: "OverCurrentFailure",
    FaultKind.VEHICLE: "EVCommunicationError",
    FaultKind.OTHER: "OtherError",
}


@dataclass(frozen=True)
class ConnectorStatus:
    status: str                       # OCPP 1.6 ChargePointStatus
    error_code: str = "NoError"       # OCPP 1.6 ChargePointErrorCode
    info: str | None = None           # CiString50
    vendor_error_code: str | None = None


def connector_status(*, pilot: Pilot | None, mode: Mode | None, fault: Fault | None, link_problem: str | None,
                     operative: bool, transaction: bool, finishing: bool, pending_start: bool) -> ConnectorStatus:
    """The connector's OCPP status.

    `pilot`/`mode`/`fault` are the latest reading (None before the first one),
    `link_problem` says why the wallbox does not answer once that has lasted
    past the fault threshold, `finishing` that a transaction ended while the
    vehicle stayed plugged in, `pending_start` that a remote start waits for
    the vehicle.
    """
    if link_problem is not None:
        return ConnectorStatus("Faulted", "InternalError", _cut(link_problem), "serial")
    if fault is not None:
        return ConnectorStatus("Faulted", ERROR_CODES[fault.kind], _cut(fault.info), fault.vendor_code)
    if pilot is None:
        return ConnectorStatus("Unavailable", info="waiting for the wallbox's first answer")
    if pilot == Pilot.E:
        return ConnectorStatus("Faulted", "EVCommunicationError", "no control pilot signal")
    if not operative and not transaction:
        return ConnectorStatus("Unavailable")
    if pilot == Pilot.UNKNOWN and transaction:  # the board is starting again: nothing flows
        return ConnectorStatus("SuspendedEVSE")
    if not pilot.plugged:
        return ConnectorStatus("Preparing" if pending_start else "Available")
    if transaction:
        if mode != Mode.ENABLED:
            return ConnectorStatus("SuspendedEVSE")
        return ConnectorStatus("SuspendedEV" if pilot == Pilot.B else "Charging")
    return ConnectorStatus("Finishing" if finishing else "Preparing")


def charge_point_status(*, link_problem: str | None, operative: bool) -> ConnectorStatus:
    """Connector 0: the wallbox as a whole."""
    if link_problem is not None:
        return ConnectorStatus("Faulted", "InternalError", _cut(link_problem), "serial")
    return ConnectorStatus("Available" if operative else "Unavailable")


def charging_amps(limit: float | None, *, online: bool, default_current: float, max_current: float) -> int | None:
    """Amps to offer for a charging-profile `limit` (None: no profile applies); None to sleep.

    Offline, the load manager cannot react to what the site draws, so the
    wallbox falls back to its configured default current (or the profile's
    limit, if that is lower).
    """
    ceiling = max_current if online else min(default_current, max_current)
    amps = ceiling if limit is None else min(ceiling, limit)
    # Rounded down: 15.9 A offered as 16 A would break the limit. The epsilon
    # keeps a W profile converted to exactly 16 A (16.000000000000004 or
    # 15.999999999999998 in floating point) at 16.
    whole = math.floor(amps + 1e-9)
    return whole if whole >= MIN_CURRENT else None


@dataclass(frozen=True)
class WallboxCommand:
    mode: Mode
    amps: int | None  # None: leave the current as it is (nothing is offered anyway)
    reason: str


def wallbox_command(*, operative: bool, transaction: bool, limit: float | None, online: bool,
                    default_current: float, max_current: float) -> WallboxCommand:
    if not transaction:
        if not operative:
            return WallboxCommand(Mode.DISABLED, None, "inoperative")
        # Asleep, the wallbox still sees a vehicle plug in, but gives no energy
        # until a transaction is authorized.
        return WallboxCommand(Mode.SLEEPING, None, "no transaction")
    amps = charging_amps(limit, online=online, default_current=default_current, max_current=max_current)
    source = "charging profile" if limit is not None else "no charging profile"
    if not online:
        source += ", offline: default current"
    if amps is None:
        return WallboxCommand(Mode.SLEEPING, None, f"{source}: below {MIN_CURRENT} A")
    return WallboxCommand(Mode.ENABLED, amps, source)


@dataclass(frozen=True)
class Start:
    id_tag: str


@dataclass(frozen=True)
class Stop:
    reason: str  # OCPP 1.6 Reason


def transaction_step(*, pilot: Pilot, transaction: bool, authorized_tag: str | None,
                     stop_reason: str | None) -> Start | Stop | None:
    """Whether a transaction starts or stops now, given the latest reading.

    A transaction runs from the moment a plugged-in vehicle is authorized
    (remote start, before or after plugging in) until the vehicle leaves or
    the transaction is stopped (remotely, by a reset, by a refused id tag).
    While the wallbox cannot tell (a board still starting after a power cut)
    nothing starts or stops: an unknown pilot is not an unplugged vehicle.
    """
    if pilot == Pilot.UNKNOWN:
        return None
    if transaction:
        if stop_reason is not None:
            return Stop(stop_reason)
        if not pilot.plugged:
            return Stop("EVDisconnected")
        return None
    if pilot.plugged and authorized_tag is not None:
        return Start(authorized_tag)
    return None


def meter_due(last: float | None, now: float, interval: float) -> bool:
    """Whether a periodic MeterValues is due (interval 0: none are sent)."""
    if interval <= 0:
        return False
    return last is None or now - last >= interval


def _cut(text: str) -> str:
    return text[:50]  # StatusNotification's info is a CiString50
