"""Register maps: what a meter model keeps where, as data.

A meter model is a table of rows (what it measures, address, function code,
data type, word order, scale), one TOML file per model in `maps/`, or the
`registers` of a `model = "custom"` meter in the site config. Both go through
the same pydantic models, so a shipped map and a custom one are checked alike:
no two rows overlap, every quantity the load manager needs is there, every
SunSpec scale-factor reference names a scale-factor row.

Nothing here does I/O beyond reading the shipped files once.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PHASE_QUANTITIES = tuple(f"{kind}_l{n}" for kind in ("current", "voltage", "power") for n in (1, 2, 3))
ENERGY_QUANTITIES = ("import_energy", "export_energy")
# The grid's frequency: only information (commissioning checks it against the band), so optional.
QUANTITIES = PHASE_QUANTITIES + ENERGY_QUANTITIES + ("frequency",)

Quantity = Literal[
    "current_l1", "current_l2", "current_l3",
    "voltage_l1", "voltage_l2", "voltage_l3",
    "power_l1", "power_l2", "power_l3",
    "import_energy", "export_energy", "frequency",
]
# "sunssf" is SunSpec's signed 16-bit power-of-ten scale factor, read from the meter.
DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "sunssf"]
WORDS = {"int16": 1, "uint16": 1, "sunssf": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4}

# Where SunSpec devices put their "SunS" marker, in the order the spec says to look.
SUNSPEC_BASES = (40000, 0, 50000)
# How a meter says "I do not measure this": SunSpec's "not implemented" values,
# or (ABB and others) the largest value of the type.
UNAVAILABLE = {
    "sunspec": {"int16": -0x8000, "sunssf": -0x8000, "uint16": 0xFFFF, "int32": -0x80000000,
                "uint32": 0xFFFFFFFF, "int64": -0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF},
    "max": {"int16": 0x7FFF, "sunssf": 0x7FFF, "uint16": 0xFFFF, "int32": 0x7FFFFFFF, "uint32": 0xFFFFFFFF,
            "int64": 0x7FFFFFFFFFFFFFFF, "uint64": 0xFFFFFFFFFFFFFFFF},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterRow(_Strict):
    """One value the meter holds: a measured quantity, or a SunSpec scale factor
    (type "sunssf", with a `name` other rows refer to)."""

    measures: Quantity | None = None
    name: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    address: int
    function: int
    type: DataType
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    scale_factor: str | None = None
    # Some meters sign the current with the direction of power flow; the fuse
    # sees the magnitude, so such rows are read as their absolute value.
    magnitude: bool = False

    @field_validator("address")
    @classmethod
    def _address(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError("register address must be 0..65535 (the protocol address, e.g. 30001 in a manual is 0)")
        return value

    @field_validator("function")
    @classmethod
    def _function(cls, value: int) -> int:
        if value not in (3, 4):
            raise ValueError("function must be 3 (holding registers) or 4 (input registers)")
        return value

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if not math.isfinite(value) or not 1e-9 <= abs(value) <= 1e9:
            raise ValueError("scale must be a non-zero number of magnitude 1e-9..1e9 (e.g. 0.1 for a value in tenths)")
        return value

    @model_validator(mode="after")
    def _kind(self) -> "RegisterRow":
        if self.type == "sunssf":
            if self.name is None or self.measures is not None:
                raise ValueError('a "sunssf" row is a scale factor: give it a name, not measures')
            if self.scale_factor is not None:
                raise ValueError("a scale-factor row cannot itself have a scale_factor")
        else:
            if self.measures is None:
                raise ValueError(f"say what the row measures, one of {', '.join(QUANTITIES)}")
            if self.name is not None:
                raise ValueError('only "sunssf" scale-factor rows have a name')
        if self.address + WORDS[self.type] - 1 > 65535:
            raise ValueError(f"a {self.type} at {self.address} runs past register 65535")
        return self

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def key(self) -> str:
        return self.measures or self.name or ""


class RegisterMap(_Strict):
    name: str
    description: str = ""
    # Other model names that share this table (ABB B24 is read like the B23).
    aliases: list[str] = []
    # Where the numbers come from (manual name and version): kept with the data.
    source: str = ""
    # SunSpec devices: addresses are offsets from the model's ID register, found at run time.
    sunspec_model: Annotated[int, Field(ge=1, le=65534)] | None = None
    unavailable: Literal["none", "sunspec", "max"] = "none"
    # Rows at most this many registers apart are read in one request; only for
    # meters known to answer for every register in between.
    max_gap: Annotated[int, Field(ge=0, le=32)] = 0
    registers: Annotated[list[RegisterRow], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> "RegisterMap":
        problems = map_problems(self.registers)
        if self.sunspec_model is not None and any(r.function != 3 for r in self.registers):
            problems.append("SunSpec registers are holding registers: every row needs function = 3")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def phases(self) -> int:
        """1 for a single-phase meter (only L1 rows), else 3."""
        return 3 if any(r.measures and r.measures[-2:] in ("l2", "l3") for r in self.registers) else 1

    def row(self, quantity: str) -> RegisterRow | None:
        return next((r for r in self.registers if r.key == quantity), None)


def map_problems(rows: list[RegisterRow]) -> list[str]:
    """What makes a list of rows unusable as a meter map (empty when fine)."""
    problems: list[str] = []
    keys = [r.key for r in rows]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"{key} is given more than once")
    single = not any(r.measures and r.measures[-2:] in ("l2", "l3") for r in rows)
    needed = [q for q in PHASE_QUANTITIES if not single or q.endswith("l1")]
    missing = [q for q in needed if q not in keys]
    if missing:
        problems.append(f"missing {', '.join(missing)} (a meter map needs current, voltage and power of "
                        "each phase it measures: L1 only for a single-phase meter, else L1, L2 and L3)")
    names = {r.name for r in rows if r.type == "sunssf"}
    for r in rows:
        if r.scale_factor is not None and r.scale_factor not in names:
            problems.append(f"{r.key} refers to scale factor {r.scale_factor!r}, which no \"sunssf\" row names")
    spans = sorted((r.function, r.address, r.address + r.words - 1, r.key) for r in rows)
    for (f1, _, end1, k1), (f2, start2, _, k2) in zip(spans, spans[1:]):
        if f1 == f2 and start2 <= end1:
            problems.append(f"{k1} and {k2} overlap at register {start2} (function {f1})")
    return problems


def _maps_folder():
    return resources.files("edge.meters") / "maps"


class MapError(Exception):
    pass


@cache
def _shipped() -> dict[str, RegisterMap]:
    """Model name (file name without .toml, or one of its aliases) -> map."""
    index: dict[str, RegisterMap] = {}
    for path in sorted(_maps_folder().iterdir(), key=lambda p: p.name):
        if path.name.endswith(".toml"):
            rmap = parse_map(path.name.removesuffix(".toml"), tomllib.loads(path.read_text(encoding="utf-8")))
            for name in (rmap.name, *rmap.aliases):
                if name in index:
                    raise MapError(f"register map name {name!r} is used twice in {_maps_folder()}")
                index[name] = rmap
    return index


def shipped_names() -> list[str]:
    return sorted(_shipped())


def load_map(name: str) -> RegisterMap:
    """A shipped map by model name."""
    try:
        return _shipped()[name]
    except KeyError:
        raise MapError(f"no shipped register map {name!r}; known: {', '.join(shipped_names())}") from None


def parse_map(name: str, data: dict) -> RegisterMap:
    """A map from its TOML table. `[defaults]` fills keys the rows leave out,
    so a file does not repeat "function = 4" on every line."""
    data = dict(data)
    defaults = data.pop("defaults", {})
    rows = [{**defaults, **row} for row in data.pop("registers", [])]
    try:
        return RegisterMap.model_validate({"name": name, **data, "registers": rows})
    except ValidationError as exc:
        raise MapError(f"register map {name!r}: {exc}") from None
