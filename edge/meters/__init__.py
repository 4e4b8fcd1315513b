"""Grid meters over Modbus TCP/RTU, for load management.

    config.py     the [[meters]] tables of the site config (MeterConfig)
    registers.py  register maps as data; maps/*.toml are the shipped models
    blocks.py     map -> few Modbus reads, answers -> values (pure)
    reading.py    MeterReading and the plausibility check (pure)
    modbus.py     pymodbus clients, one per TCP endpoint or RS-485 device
    sunspec.py    finding a SunSpec model on a device
    poller.py     MeterPoller: polls one meter, keeps the last good reading

The load manager needs only `GridMeter`: the last good reading and whether it
is fresh enough to trust.
"""

from __future__ import annotations

from typing import Protocol

from edge.meters.config import MeterConfig, bus_conflicts
from edge.meters.modbus import ModbusLinks
from edge.meters.poller import MeterPoller
from edge.meters.reading import MeterReading, Sample, check
from edge.meters.registers import RegisterMap, RegisterRow, load_map, shipped_names


class GridMeter(Protocol):
    @property
    def meter_id(self) -> str: ...

    @property
    def latest(self) -> MeterReading | None: ...

    def healthy(self, now_monotonic: float, max_age: float) -> bool: ...


__all__ = ["GridMeter", "MeterConfig", "MeterPoller", "MeterReading", "ModbusLinks", "RegisterMap",
           "RegisterRow", "Sample", "bus_conflicts", "check", "load_map", "shipped_names"]
