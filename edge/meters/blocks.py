"""From a register map to Modbus requests and back. Pure.

`plan` groups the rows into as few reads as the protocol allows (one request
per contiguous run of registers, at most 125 registers each): on a 9600-baud
RS-485 bus every request costs a round trip of tens of milliseconds, and a
meter read in one request gives values that belong to the same moment.
`decode` turns the answered registers into physical values, applying word
order, type, scale and SunSpec scale factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymodbus.client.mixin import ModbusClientMixin

from edge.meters.registers import UNAVAILABLE, RegisterMap, RegisterRow

MAX_READ = 125          # registers in one read request (Modbus application protocol, 6.3/6.4)

PYMODBUS_TYPES = {
    "int16": ModbusClientMixin.DATATYPE.INT16, "sunssf": ModbusClientMixin.DATATYPE.INT16,
    "uint16": ModbusClientMixin.DATATYPE.UINT16, "int32": ModbusClientMixin.DATATYPE.INT32,
    "uint32": ModbusClientMixin.DATATYPE.UINT32, "int64": ModbusClientMixin.DATATYPE.INT64,
    "uint64": ModbusClientMixin.DATATYPE.UINT64, "float32": ModbusClientMixin.DATATYPE.FLOAT32,
}


@dataclass(frozen=True)
class Block:
    function: int
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def describe(self) -> str:
        kind = "holding" if self.function == 3 else "input"
        return f"{kind} registers {self.address}..{self.end - 1} (function {self.function})"


def plan(rows: list[RegisterRow], offset: int = 0, max_gap: int = 0) -> list[Block]:
    """The reads that cover every row; `offset` shifts all addresses (SunSpec)."""
    blocks: list[Block] = []
    for row in sorted(rows, key=lambda r: (r.function, r.address)):
        start, end = row.address + offset, row.address + offset + row.words
        last = blocks[-1] if blocks else None
        if (last and last.function == row.function and start <= last.end + max_gap
                and max(end, last.end) - last.address <= MAX_READ):
            blocks[-1] = Block(last.function, last.address, max(end, last.end) - last.address)
        else:
            blocks.append(Block(row.function, start, end - start))
    return blocks


def _raw(row: RegisterRow, offset: int, answers: dict[Block, list[int]]) -> int | float | None:
    address = row.address + offset
    for block, registers in answers.items():
        if block.function == row.function and block.address <= address and address + row.words <= block.end:
            words = registers[address - block.address: address - block.address + row.words]
            return ModbusClientMixin.convert_from_registers(words, PYMODBUS_TYPES[row.type], word_order=row.word_order)
    return None


def decode(rmap: RegisterMap, answers: dict[Block, list[int]], offset: int = 0) -> dict[str, float | None]:
    """Quantity -> value in A, V, W or Wh; None where the meter says it does not
    measure it (or its scale factor is missing or absurd)."""
    unavailable = UNAVAILABLE.get(rmap.unavailable, {})
    raw: dict[str, int | float | None] = {}
    for row in rmap.registers:
        value = _raw(row, offset, answers)
        if value is not None and unavailable.get(row.type) == value:
            value = None
        raw[row.key] = value
    values: dict[str, float | None] = {}
    for row in rmap.registers:
        if row.measures is None:
            continue
        value = raw[row.key]
        if value is None:
            values[row.measures] = None
            continue
        value = float(value) * row.scale
        if row.scale_factor is not None:
            exponent = raw.get(row.scale_factor)
            # SunSpec limits scale factors to -10..10; anything else is a misread.
            if not isinstance(exponent, int) or not -10 <= exponent <= 10:
                values[row.measures] = None
                continue
            value *= 10.0 ** exponent
        if row.magnitude and math.isfinite(value):
            value = abs(value)
        values[row.measures] = value
    return values
