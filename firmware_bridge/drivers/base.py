"""What the bridge needs from a wallbox, whatever serial protocol it speaks.

A driver is one module that implements `WallboxDriver` for one protocol and
registers a factory under the protocol's name (`[wallbox] protocol` in the
bridge's config). Drivers translate their protocol's states and fault codes
into the plain vocabulary below; everything OCPP lives outside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Protocol


class Pilot(StrEnum):
    """The control pilot state (IEC 61851-1 / SAE J1772) the wallbox measures."""

    A = "A"  # no vehicle
    B = "B"  # vehicle connected, not asking for energy
    C = "C"  # vehicle asks for energy
    D = "D"  # vehicle asks for energy, with ventilation
    E = "E"  # no pilot: short circuit or the wallbox has no power on the pilot
    UNKNOWN = "unknown"  # the wallbox cannot tell (booting, pilot switched off)

    @property
    def plugged(self) -> bool:
        return self in (Pilot.B, Pilot.C, Pilot.D)


class Mode(StrEnum):
    """Whether the wallbox may supply energy."""

    ENABLED = "enabled"    # offers its current to a vehicle that asks
    SLEEPING = "sleeping"  # still sees the vehicle, offers nothing (paused, not authorized)
    DISABLED = "disabled"  # out of service: offers nothing, may not even see the vehicle


class FaultKind(StrEnum):
    """The wallbox's own faults, grouped by what an installer has to look at."""

    GROUND = "ground"                # residual current, missing earth, failed RCD self test
    RELAY = "relay"                  # contactor stuck or not closing
    OVER_TEMPERATURE = "over_temperature"
    OVER_CURRENT = "over_current"    # the vehicle drew more than offered
    VEHICLE = "vehicle"              # pilot diode missing: not a proper vehicle
    OTHER = "other"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    vendor_code: str  # the protocol's own code, for the installer (e.g. RAPI state "06")
    info: str         # a few words, e.g. "GFCI fault"


@dataclass(frozen=True)
class Identity:
    vendor: str
    model: str
    firmware_version: str | None = None
    serial_number: str | None = None
    max_current: int | None = None  # what the wallbox's hardware allows, when it says


@dataclass(frozen=True)
class WallboxState:
    """One consistent reading of the wallbox."""

    pilot: Pilot
    mode: Mode
    fault: Fault | None
    offered_current: int | None  # amps the pilot advertises (None: not known)
    current: float               # amps flowing now, per phase
    voltage: float               # volts
    energy_wh: int               # lifetime energy register, never reset by a session


class DriverError(Exception):
    """The wallbox could not be reached or did not answer sensibly; retried by the caller."""


class PortLost(DriverError):
    """The serial device itself is gone (adapter unplugged) or cannot be opened."""


class WallboxDriver(Protocol):
    """The interface a wallbox protocol implements. Every method may raise DriverError."""

    async def connect(self) -> Identity:
        """Open the serial port and introduce the wallbox."""

    async def close(self) -> None:
        """Release the serial port; safe to call at any time, also after a failure."""

    async def read_state(self) -> WallboxState:
        ...

    async def set_current(self, amps: int) -> int:
        """Offer `amps` per phase (within the wallbox's range); returns what it applied."""

    async def set_mode(self, mode: Mode) -> None:
        """Enable, sleep or disable the wallbox."""

    async def restart(self) -> None:
        """Restart the wallbox's firmware (OCPP hard reset)."""

    async def wait_notification(self, timeout: float) -> bool:
        """Until the wallbox announces a change by itself (True) or `timeout` seconds pass (False)."""


@dataclass(frozen=True)
class SerialSettings:
    device: str
    baud_rate: int
    reply_timeout: float  # seconds to wait for one answer
    attempts: int         # tries per command before it counts as failed


DriverFactory = Callable[[SerialSettings], WallboxDriver]
_DRIVERS: dict[str, DriverFactory] = {}


def register(name: str) -> Callable[[DriverFactory], DriverFactory]:
    """Class decorator: make a driver available under `name` in the config."""
    def add(factory: DriverFactory) -> DriverFactory:
        if name in _DRIVERS:
            raise ValueError(f"a wallbox driver named {name!r} is already registered")
        _DRIVERS[name] = factory
        return factory
    return add


def names() -> list[str]:
    return sorted(_DRIVERS)


def create(name: str, settings: SerialSettings) -> WallboxDriver:
    try:
        factory = _DRIVERS[name]
    except KeyError:
        raise ValueError(f"no wallbox driver {name!r}; known: {', '.join(names())}") from None
    return factory(settings)
