"""The `[[meters]]` tables of the site config: one grid meter each.

Every error names the problem in words an installer can act on; edge/config.py
prefixes it with the file and key ("site.toml: meters[0].port: ...").
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ValidationInfo, field_validator, model_validator

from edge.config_base import Strict as _Strict
from edge.config_base import repeated, same_ids
from edge.meters.registers import RegisterMap, RegisterRow, load_map, shipped_names

METER_ID = re.compile(r"^[A-Za-z0-9._\-]{1,48}$")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$")
IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class MeterConfig(_Strict):
    id: str
    model: str
    transport: Literal["tcp", "rtu"]
    # Modbus TCP (a meter with Ethernet, or an RS-485 gateway)
    host: str | None = None
    port: int = 502
    # Modbus RTU on RS-485
    device: str | None = None
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = 1
    period: float = 1.0
    timeout: float = 0.5
    retries: int = 1
    registers: list[RegisterRow] | None = None
    current_max: float = 1000.0

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not METER_ID.match(value):
            raise ValueError("meter id must be 1-48 characters of A-Z a-z 0-9 . _ -")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if value != "custom" and value not in shipped_names():
            raise ValueError(f"unknown meter model; one of {', '.join(shipped_names())}, "
                             "or \"custom\" with a registers list")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not (HOSTNAME.match(value) or (":" in value and IPV6.match(value))):
            raise ValueError("must be the meter's or gateway's IP address or host name, e.g. '192.168.1.50'")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("must be a TCP port 1..65535 (Modbus TCP uses 502)")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be the serial device's path, e.g. /dev/ttyUSB0 "
                             "(/dev/serial/by-id/... keeps working when adapters are re-plugged)")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("transport") == "tcp":
            # On TCP the unit id routes through gateways; 0 and 255 are common for direct devices.
            if not 0 <= value <= 255:
                raise ValueError("unit must be 0..255 on Modbus TCP")
        elif not 1 <= value <= 247:
            raise ValueError("unit must be 1..247 on an RS-485 bus: the Modbus address set on the meter's front panel")
        return value

    @field_validator("registers")
    @classmethod
    def _registers(cls, value: list[RegisterRow] | None, info: ValidationInfo) -> list[RegisterRow] | None:
        model = info.data.get("model")
        if value is not None and model is not None and model != "custom":
            raise ValueError(f'registers can only be given with model = "custom"; model {model!r} '
                             "has its own shipped map")
        if value is not None:
            try:
                RegisterMap(name="custom", registers=value)
            except ValueError as exc:
                raise ValueError(f"custom register map: {_first_error(exc)}") from None
        return value

    @field_validator("baudrate")
    @classmethod
    def _baudrate(cls, value: int) -> int:
        if value not in BAUDRATES:
            raise ValueError(f"must be one of {', '.join(map(str, BAUDRATES))}, as set on the meter")
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: float) -> float:
        if not 0.2 <= value <= 60:
            raise ValueError("poll period must be 0.2..60 seconds (one meter read on a 9600-baud bus takes ~0.1 s)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not 0.05 <= value <= 10:
            raise ValueError("answer timeout must be 0.05..10 seconds")
        return value

    @field_validator("retries")
    @classmethod
    def _retries(cls, value: int) -> int:
        if not 0 <= value <= 5:
            raise ValueError("retries must be 0..5 (each retry of a silent meter holds the bus for `timeout`)")
        return value

    @field_validator("current_max")
    @classmethod
    def _current_max(cls, value: float) -> float:
        if not 0 < value <= 100_000:
            raise ValueError("current_max must be above 0 A and at most 100000 A "
                             "(readings above it are refused as implausible)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "MeterConfig":
        given = self.model_fields_set
        if self.transport == "tcp":
            if self.host is None:
                raise ValueError('transport = "tcp" needs host (the meter\'s or gateway\'s address)')
            extra = [k for k in ("device", *_SERIAL_KEYS) if k in given]
            if extra:
                raise ValueError(f'{", ".join(extra)} only apply to transport = "rtu"')
        else:
            if self.device is None:
                raise ValueError('transport = "rtu" needs device (e.g. /dev/ttyUSB0)')
            extra = [k for k in ("host", "port") if k in given]
            if extra:
                raise ValueError(f'{", ".join(extra)} only apply to transport = "tcp"')
        if self.model == "custom" and not self.registers:
            raise ValueError('model = "custom" needs a registers list (rows with measures, address, function, type)')
        return self

    def register_map(self) -> RegisterMap:
        if self.model == "custom":
            return RegisterMap(name=self.id, description="custom map from the site config",
                               registers=list(self.registers or []))
        return load_map(self.model)

    def where(self) -> str:
        """How the installer would name this meter's connection."""
        if self.transport == "tcp":
            return f"{self.host}:{self.port} unit {self.unit}"
        return f"{self.device} unit {self.unit}"


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in errors())
    return str(exc)


def bus_conflicts(meters: list[MeterConfig]) -> list[str]:
    """Problems across meters: duplicate ids, one RS-485 device with different
    serial settings, one unit id twice on a bus. For the site config's checks."""
    problems: list[str] = []
    for first, again in same_ids(m.id for m in meters):
        problems.append(f"meter id {repeated(first, again)} appears more than once in [[meters]]")
    buses: dict[str, MeterConfig] = {}
    units: set[tuple[str, int]] = set()
    for meter in meters:
        bus = meter.device if meter.transport == "rtu" else f"{meter.host}:{meter.port}"
        if (bus, meter.unit) in units:
            problems.append(f"meters on {bus} share unit {meter.unit}: each meter on a bus needs its own address")
        units.add((bus, meter.unit))
        if meter.transport == "rtu":
            first = buses.setdefault(bus, meter)
            differ = [k for k in _SERIAL_KEYS if getattr(first, k) != getattr(meter, k)]
            if differ:
                problems.append(f"meters {first.id!r} and {meter.id!r} share {bus} but differ in "
                                f"{', '.join(differ)}: every device on one RS-485 bus must use the same settings")
    return problems


__all__ = ["MeterConfig", "bus_conflicts"]
