"""A simulated Eastron SDM630 grid meter: a real pymodbus server, over Modbus
TCP and over Modbus RTU on a pseudo-terminal.

The registers follow Eastron's SDM630 protocol (input registers, IEEE 754
floats, high word first), written out here from the manual rather than from
the edge's map, so a test that polls this meter checks the map against a
second reading of the manual. `source` is called at every read and gives the
per-phase currents (negative: exporting), so a test or the demo can close the
loop: base load plus what the simulated chargers really draw.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Callable

from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.clock import Clock
from simulator.serial_link import NullModem

Phases = tuple[float, float, float]

# Input register address of each value (SDM630 Modbus protocol, 30001 + address).
VOLTAGE = (0x00, 0x02, 0x04)
CURRENT = (0x06, 0x08, 0x0A)
POWER = (0x0C, 0x0E, 0x10)
APPARENT = (0x12, 0x14, 0x16)
REACTIVE = (0x18, 0x1A, 0x1C)
POWER_FACTOR = (0x1E, 0x20, 0x22)
AVERAGE_VOLTAGE = 0x2A
AVERAGE_CURRENT = 0x2E
SUM_CURRENT = 0x30
TOTAL_POWER = 0x34
TOTAL_APPARENT = 0x38
TOTAL_REACTIVE = 0x3C
TOTAL_POWER_FACTOR = 0x3E
FREQUENCY = 0x46
IMPORT_KWH = 0x48
EXPORT_KWH = 0x4A
INPUT_REGISTERS = 0x4C


def _float_registers(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


class SimulatedMeter:
    """Fault knobs: `silent` (stops answering, like an unplugged meter) and
    `garbage` (answers NaN everywhere). `reads` counts answered reads."""

    def __init__(self, source: Callable[[], Phases], voltage: float = 230.0, power_factor: float = 1.0,
                 clock: Clock | None = None, *, frequency: float = 50.0,
                 import_kwh: float = 0.0, export_kwh: float = 0.0):
        self.source = source
        self.voltage = voltage
        self.power_factor = power_factor
        self.frequency = frequency
        self.clock = clock or Clock()
        self.import_wh = import_kwh * 1000.0
        self.export_wh = export_kwh * 1000.0
        self.silent = False
        self.garbage = False
        self.reads = 0
        self.currents: Phases = (0.0, 0.0, 0.0)     # as last served (signed)
        self._last_at: float | None = None
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self.cables: list[NullModem] = []          # one per start_rtu(); tests may garble them

    # -- the physics -----------------------------------------------------------------

    def _advance(self) -> list[float]:
        """Read the source, integrate energy since the last read, and return the
        values of every input register pair (index = address / 2)."""
        now = self.clock.monotonic()
        currents = tuple(float(a) for a in self.source())
        powers = [self.voltage * a * self.power_factor for a in currents]
        if self._last_at is not None:
            # The previous powers held since the last read (what a meter's
            # energy register would have accumulated meanwhile).
            hours = max(0.0, now - self._last_at) / 3600
            previous = [self.voltage * a * self.power_factor for a in self.currents]
            self.import_wh += sum(max(p, 0.0) for p in previous) * hours
            self.export_wh += sum(max(-p, 0.0) for p in previous) * hours
        self._last_at, self.currents = now, (currents[0], currents[1], currents[2])
        values = [0.0] * (INPUT_REGISTERS // 2)
        for n in range(3):
            amps = abs(currents[n])
            apparent = self.voltage * amps
            values[VOLTAGE[n] // 2] = self.voltage
            values[CURRENT[n] // 2] = amps
            values[POWER[n] // 2] = powers[n]
            values[APPARENT[n] // 2] = apparent
            values[REACTIVE[n] // 2] = math.sqrt(max(apparent ** 2 - powers[n] ** 2, 0.0))
            values[POWER_FACTOR[n] // 2] = self.power_factor
        values[AVERAGE_VOLTAGE // 2] = self.voltage
        values[AVERAGE_CURRENT // 2] = sum(abs(a) for a in currents) / 3
        values[SUM_CURRENT // 2] = sum(abs(a) for a in currents)
        values[TOTAL_POWER // 2] = sum(powers)
        values[TOTAL_APPARENT // 2] = sum(self.voltage * abs(a) for a in currents)
        values[TOTAL_REACTIVE // 2] = sum(values[r // 2] for r in REACTIVE)
        values[TOTAL_POWER_FACTOR // 2] = self.power_factor
        values[FREQUENCY // 2] = self.frequency
        values[IMPORT_KWH // 2] = self.import_wh / 1000
        values[EXPORT_KWH // 2] = self.export_wh / 1000
        return values

    async def _on_access(self, function_code: int, start_address: int, _address: int, _count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None) -> None:
        if self.silent:
            # The server drops requests for devices it does not have, without an
            # answer: from the bus that looks exactly like an unplugged meter.
            raise NoSuchIdException("simulated meter is silent")
        if function_code != 4 or set_values is not None:
            return None
        values = [math.nan] * (INPUT_REGISTERS // 2) if self.garbage else self._advance()
        for index, value in enumerate(values):
            offset = index * 2 - start_address
            if 0 <= offset and offset + 1 < len(registers):
                registers[offset:offset + 2] = _float_registers(value)
        self.reads += 1
        return None

    def _device(self, unit: int, action=None) -> SimDevice:
        coils = [SimData(0, values=False, datatype=DataType.BITS)]
        inputs = [SimData(0, values=[0.0] * (INPUT_REGISTERS // 2), datatype=DataType.FLOAT32)]
        # A few of the SDM630's holding (setup) registers: Modbus address and baud rate code.
        holding = [SimData(0x14, values=[float(unit or 1), 2.0], datatype=DataType.FLOAT32)]
        return SimDevice(unit, simdata=(coils, list(coils), holding, inputs), action=action or self._on_access)

    @staticmethod
    async def _not_me(*_args) -> None:
        raise NoSuchIdException("request for another unit")

    # -- the transports --------------------------------------------------------------

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP (answering any unit id); returns the bound port."""
        server = ModbusTcpServer(self._device(0), address=(host, port), ignore_missing_devices=True)
        await server.serve_forever(background=True)
        self._servers.append(server)
        return server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def start_rtu(self, unit: int = 1, baudrate: int = 9600) -> str:
        """Serve Modbus RTU as `unit` on one end of a pty null-modem cable;
        returns the other end's device path, for the client."""
        cable = NullModem()
        meter_end, client_end = cable.open()
        self.cables.append(cable)
        # Requests for other units get no answer, as on a real bus (device 0
        # is pymodbus' catch-all for ids it does not know).
        devices = [self._device(unit), self._device(0, action=self._not_me)]
        server = ModbusSerialServer(devices, port=meter_end, baudrate=baudrate,
                                    ignore_missing_devices=True, reconnect_delay=0)
        await server.serve_forever(background=True)
        self._servers.append(server)
        return client_end

    async def stop(self) -> None:
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()
        for cable in self.cables:
            cable.close()
        self.cables.clear()


# -- a building's base load -------------------------------------------------------------

# (name, A, minutes) of appliances that switch on at random and run a while.
APPLIANCES = (("kettle", 9.0, 3), ("cooker", 12.0, 25), ("washing machine", 9.5, 15),
              ("dishwasher", 8.5, 20), ("dryer", 10.0, 40), ("oven", 11.0, 30), ("heat pump", 6.0, 45))
SLOT = 900.0        # s: appliance starts are drawn per quarter of an hour


def _bump(hour: float, centre: float, width: float) -> float:
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def household_profile(t_seconds_of_day: float, seed: int = 0, households: int = 1) -> Phases:
    """Per-phase base load (A) of `households` homes at this time of day: low at
    night, peaks in the morning and the evening, appliances switching on and
    off. A pure function of its arguments, so a seed replays the same day."""
    t = t_seconds_of_day % 86400
    hour = t / 3600
    # Fridge, standby and lights, plus the morning and (bigger) evening peaks.
    level = 0.4 + 1.2 * _bump(hour, 7.5, 1.0) + 0.6 * _bump(hour, 12.5, 1.5) + 2.2 * _bump(hour, 19.0, 1.8)
    currents = [0.0, 0.0, 0.0]
    for home in range(households):
        rng = random.Random(f"{seed}:{home}")
        share = [0.8 + 0.4 * rng.random() for _ in range(3)]
        for n in range(3):
            currents[n] += level * share[n]
        # Appliances that started in this slot or in one of the last three
        # (the longest run is 45 minutes).
        slot = int(t // SLOT)
        for start_slot in range(slot - 3, slot + 1):
            draw = random.Random(f"{seed}:{home}:{start_slot % 96}")
            busy = 0.02 + 0.45 * max(0.0, level - 0.4) / 2.2
            for name, amps, minutes in APPLIANCES:
                if draw.random() >= busy / len(APPLIANCES) * 2:
                    continue
                start = (start_slot % 96) * SLOT + draw.random() * SLOT
                phase = draw.randrange(3)
                # Slot numbers wrap at midnight; compare on the circle of the day.
                since = (t - start) % 86400
                if since < minutes * 60:
                    currents[phase] += amps
    return (round(currents[0], 3), round(currents[1], 3), round(currents[2], 3))
