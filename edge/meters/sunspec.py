"""Finding a SunSpec model on a device.

A SunSpec device starts its register space with the marker "SunS" at 40000
(or 0, or 50000), followed by a chain of models, each an ID register, a length
register and `length` registers of points, ended by ID 0xFFFF. Where a model
sits depends on which models come before it, so it is looked up at run time
and the map's addresses are offsets from the model's ID register.
"""

from __future__ import annotations

from edge.meters.blocks import Block
from edge.meters.modbus import Link, MeterIOError
from edge.meters.registers import SUNSPEC_BASES

MARKER = [0x5375, 0x6E53]   # "SunS"
END = 0xFFFF
MAX_MODELS = 64             # a chain longer than this is a misread, not a device


async def find_model(link: Link, unit: int, retries: int, model: int) -> int:
    """The address of `model`'s ID register. Hold link.lock around the call."""
    for base in SUNSPEC_BASES:
        try:
            marker = await link.read(Block(3, base, 2), unit, retries)
        except MeterIOError as exc:
            if exc.answered:        # no registers there: try the next base
                continue
            raise                   # no answer at all: the device is not there
        if marker == MARKER:
            break
    else:
        raise MeterIOError(f"no SunSpec marker \"SunS\" at {', '.join(map(str, SUNSPEC_BASES))} on unit {unit} "
                           f"at {link.where}: not a SunSpec device, or SunSpec is off, or another unit id",
                           answered=True)
    address, seen = base + 2, []
    for _ in range(MAX_MODELS):
        model_id, length = await link.read(Block(3, address, 2), unit, retries)
        if model_id == model:
            return address
        if model_id == END:
            break
        seen.append(model_id)
        address += 2 + length
        if address > 65535 - 2:
            break
    raise MeterIOError(f"SunSpec model {model} not found on unit {unit} at {link.where} "
                       f"(models there: {', '.join(map(str, seen)) or 'none'})", answered=True)
