"""Real pymodbus servers that play a meter from its register map, for the tests.

`registers_for` is the inverse of the edge's decoding: it writes known values
into registers with the map's types, word orders, scales and (for SunSpec)
scale factors and model chain. Polling them back through the poller tests
the map's data end to end.
"""

from __future__ import annotations

import math

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.meters.blocks import PYMODBUS_TYPES
from edge.meters.registers import RegisterMap

KNOWN = {
    "current_l1": 12.34, "current_l2": 5.67, "current_l3": 0.5,
    "voltage_l1": 231.2, "voltage_l2": 229.8, "voltage_l3": 230.5,
    "power_l1": 2800.0, "power_l2": 1300.0, "power_l3": -115.0,
    "import_energy": 1_234_500.0, "export_energy": 4_300.0, "frequency": 49.9,
}
# Scale factors a SunSpec meter might choose: centiamps, decivolts, watts, watt-hours, centihertz.
SCALE_FACTORS = {"A_SF": -2, "V_SF": -1, "W_SF": 0, "TotWh_SF": 0, "Hz_SF": -2}
NOT_IMPLEMENTED = 0x8000
COMMON_MODEL_LENGTH = 66


def expected(rmap: RegisterMap) -> dict[str, float]:
    """What the poller should read back: KNOWN, with L2/L3 at 0 on a single-phase meter."""
    return {q: (v if rmap.phases == 3 or not q[-2:] in ("l2", "l3") else 0.0) for q, v in KNOWN.items()}


def _encode(value: float, row_type: str, word_order: str) -> list[int]:
    raw: int | float = value if row_type == "float32" else int(round(value))
    return ModbusClientMixin.convert_to_registers(raw, PYMODBUS_TYPES[row_type], word_order=word_order)


def registers_for(rmap: RegisterMap, values: dict[str, float], offset: int = 0) -> dict[int, dict[int, int]]:
    """function code -> {address: register} holding `values` as the meter would."""
    out: dict[int, dict[int, int]] = {3: {}, 4: {}}
    for row in rmap.registers:
        if row.type == "sunssf":
            value = float(SCALE_FACTORS[row.key])
        elif row.measures in values:
            value = values[row.measures]
            # Signed-current meters give the current the sign of the power.
            if row.magnitude and values.get(row.measures.replace("current", "power"), 0.0) < 0:
                value = -value
            value /= row.scale
            if row.scale_factor:
                value /= 10.0 ** SCALE_FACTORS[row.scale_factor]
        else:
            continue
        words = _encode(value, row.type, row.word_order)
        for i, word in enumerate(words):
            out[row.function][row.address + offset + i] = word
    return out


def sunspec_registers(rmap: RegisterMap, values: dict[str, float], base: int) -> dict[int, dict[int, int]]:
    """A SunSpec device: "SunS" at `base`, a common model, the meter model
    (unmapped points "not implemented"), and the end marker."""
    common = base + 2
    model_at = common + 2 + COMMON_MODEL_LENGTH
    length = 105
    regs = {base: 0x5375, base + 1: 0x6E53, common: 1, common + 1: COMMON_MODEL_LENGTH}
    regs.update({common + 2 + i: 0 for i in range(COMMON_MODEL_LENGTH)})
    regs.update({model_at: rmap.sunspec_model or 0, model_at + 1: length})
    regs.update({model_at + 2 + i: NOT_IMPLEMENTED for i in range(length)})
    regs.update(registers_for(rmap, values, offset=model_at)[3])
    regs.update({model_at + 2 + length: 0xFFFF, model_at + 3 + length: 0})
    return {3: regs, 4: {}}


def device(unit: int, registers: dict[int, dict[int, int]]) -> SimDevice:
    """A SimDevice answering every register from the lowest to the highest
    given (gaps read 0, as real meters answer between their values)."""
    def block(regs: dict[int, int]) -> list[SimData]:
        if not regs:
            return [SimData(0xFFF0, values=0, datatype=DataType.REGISTERS)]
        low, high = min(regs), max(regs)
        return [SimData(low, values=[regs.get(a, 0) for a in range(low, high + 1)], datatype=DataType.REGISTERS)]
    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(unit, simdata=(bits, list(bits), block(registers[3]), block(registers[4])))


async def serve_tcp(devices: list[SimDevice]) -> tuple[ModbusTcpServer, int]:
    server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def serve_rtu(devices: list[SimDevice], path: str) -> ModbusSerialServer:
    server = ModbusSerialServer(devices, port=path, baudrate=9600, reconnect_delay=0)
    await server.serve_forever(background=True)
    return server


def close_to(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
