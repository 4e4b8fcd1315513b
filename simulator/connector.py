"""What the charger knows about one connector, and the status that follows from it.

The status is derived from the facts (car plugged, transaction, availability,
fault, offered current) rather than set by hand, so it cannot drift from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from simulator.car import MIN_CURRENT, NO_CURRENT, Car, Meter, Phases, power_w


@dataclass(eq=False)
class Transaction:
    connector_id: int
    id_tag: str
    meter_start: int
    started: datetime
    # Negative and unique per simulator until the central system assigns the real id
    # (a StartTransaction queued while offline has no id yet).
    local_id: int
    transaction_id: int | None = None
    reservation_id: int | None = None
    begin: dict | None = None  # the MeterValue at the start, for StopTransaction.transactionData
    last: dict | None = None  # the latest periodic MeterValue

    @property
    def id(self) -> int:
        return self.transaction_id if self.transaction_id is not None else self.local_id


@dataclass(frozen=True)
class Fault:
    error_code: str
    info: str = ""
    vendor_error_code: str | None = None


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expiry: datetime
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class ConnectorState:
    """A snapshot of one connector, for tests and the CLI."""

    connector_id: int
    status: str
    transaction_id: int | None
    id_tag: str | None
    energy_wh: float  # the meter's register, not the session's energy
    current: Phases
    power_w: float
    soc: float | None
    limit: float  # the current offered per phase
    error_code: str = "NoError"
    plugged: bool = False


@dataclass
class Connector:
    connector_id: int
    meter: Meter = field(default_factory=Meter)
    car: Car | None = None
    transaction: Transaction | None = None
    finishing: bool = False  # a transaction ended and the cable is still plugged
    operative: bool = True
    scheduled_operative: bool | None = None  # ChangeAvailability waiting for the transaction to end
    fault: Fault | None = None
    reservation: Reservation | None = None
    starting: bool = False  # a RemoteStartTransaction was accepted and is about to start
    shown: tuple[str, Fault] | None = None  # the last status emitted as an event
    reported: tuple[str, Fault] | None = None  # the last status the central system acknowledged
    updated: float | None = None  # clock() at the last physics step
    target: Phases = NO_CURRENT  # what the car heads for since `updated`

    @property
    def busy(self) -> bool:
        return self.transaction is not None or self.starting

    def status(self, offered: float) -> str:
        if self.fault is not None:
            return "Faulted"
        if self.connector_id == 0:
            return "Available" if self.operative else "Unavailable"
        if self.transaction is not None:
            if offered < MIN_CURRENT:
                return "SuspendedEVSE"
            car, soc = self.car, self.meter.soc
            if car is None or car.max_current < MIN_CURRENT or (soc is not None and soc >= 100.0):
                return "SuspendedEV"
            return "Charging"
        if not self.operative:
            return "Unavailable"
        if self.car is None:
            return "Reserved" if self.reservation else "Available"
        return "Finishing" if self.finishing else "Preparing"

    def snapshot(self, offered: float, voltage: float) -> ConnectorState:
        tx = self.transaction
        return ConnectorState(
            connector_id=self.connector_id,
            status=self.status(offered),
            transaction_id=tx.id if tx else None,
            id_tag=tx.id_tag if tx else None,
            energy_wh=self.meter.energy_wh,
            current=self.meter.currents,
            power_w=power_w(self.meter.currents, voltage),
            soc=self.meter.soc,
            limit=offered,
            error_code=self.fault.error_code if self.fault else "NoError",
            plugged=self.car is not None,
        )
