"""Meter readings and the plausibility check. Pure: time is passed in.

The load manager trusts what passes `check` to keep every phase under its
fuse, so a doubtful current is refused, never guessed: a refused reading
leaves the last good one in place until it is too old, and then the load
manager assumes the worst (fail closed). Energy totals and the frequency are
only information here, so a doubtful one is dropped (None) and the currents
stay usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from edge.meters.config import MeterConfig

Phases = tuple[float, float, float]

VOLTAGE_MAX = 300.0         # V line-to-neutral: above this on a 230/400 V grid is a misread, not a grid
# A phase with current but no voltage: a CT meter whose voltage tap is open.
# The current is still measured, so it is used, and the installer is told.
CURRENT_WITHOUT_VOLTAGE = 0.5
ENERGY_SLACK = 1e-6         # relative: a float32 total can jitter in its last digit
# Hz: a 50 or 60 Hz grid never leaves this; a value outside is a misread (wrong map or scale),
# not a grid, and is dropped. Whether the grid is in its band is commissioning's question.
FREQUENCY_RANGE = (40.0, 70.0)


@dataclass(frozen=True)
class MeterReading:
    meter_id: str
    at: float                   # the clock's monotonic seconds when the read completed
    wall: datetime
    current: Phases             # A per phase L1, L2, L3: the magnitude, whichever way power flows
    voltage: Phases             # V line-to-neutral
    power: Phases               # W, + import from the grid, - export
    import_wh: float | None
    export_wh: float | None
    frequency: float | None = None      # Hz; None where the map has no frequency or its value was implausible


@dataclass(frozen=True)
class Sample:
    """What one read of the meter gave, before any check."""

    values: Mapping[str, float | None]      # quantity name (current_l1, ..., import_energy) -> value
    at: float                               # monotonic seconds when the last answer arrived
    wall: datetime
    phases: int = 3                         # 1: a single-phase meter; L2 and L3 are 0


def stale_after(config: MeterConfig) -> float:
    """How old a sample may be when it is checked: two poll periods plus the
    time a slow read with all its retries may take."""
    return 2 * config.period + config.timeout * (config.retries + 1)


def _phase_values(sample: Sample, kind: str, problems: list[str]) -> list[float] | None:
    values: list[float] = []
    for n in (1, 2, 3):
        name = f"{kind}_l{n}"
        if n > sample.phases:
            values.append(0.0)
            continue
        value = sample.values.get(name)
        if value is None:
            problems.append(f"{name} not available from the meter")
            return None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name} is not a number ({value!r})")
            return None
        values.append(float(value))
    return values


def _energy(sample: Sample, name: str, previous: float | None, problems: list[str]) -> float | None:
    value = sample.values.get(name)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        problems.append(f"{name} total {value!r} Wh is not a plausible counter; ignored")
        return None
    if previous is not None and value < previous - max(1.0, previous * ENERGY_SLACK):
        problems.append(f"{name} total went backwards from {previous:.0f} Wh to {value:.0f} Wh "
                        "(meter replaced or reset?); ignored for this reading")
        return None
    return float(value)


def _frequency(sample: Sample, problems: list[str]) -> float | None:
    value = sample.values.get("frequency")
    if value is None:
        return None
    low, high = FREQUENCY_RANGE
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        problems.append(f"frequency {value!r} Hz is outside {low:g}-{high:g} Hz: a misread (check the map's "
                        "scale); ignored")
        return None
    return float(value)


def check(sample: Sample, previous: MeterReading | None, now: float,
          config: MeterConfig) -> tuple[MeterReading | None, list[str]]:
    """The reading to use, or None with the reasons it was refused. Problems
    that do not refuse the reading (a dropped energy total) are listed too."""
    problems: list[str] = []
    try:
        age = now - sample.at
        if not math.isfinite(age) or age > stale_after(config):
            return None, [f"reading is {age:.1f} s old (more than {stale_after(config):.1f} s): stale"]
        if age < -1e-3:
            return None, [f"reading is stamped {-age:.3f} s in the future"]
        if previous is not None and sample.at <= previous.at:
            return None, ["reading is not newer than the last one"]
        # One missing or non-numeric value refuses the reading; naming the first is enough.
        current = _phase_values(sample, "current", problems)
        voltage = _phase_values(sample, "voltage", problems) if current is not None else None
        power = _phase_values(sample, "power", problems) if voltage is not None else None
        if current is None or voltage is None or power is None:
            return None, problems
        refused = False
        for n, (amps, volts, watts) in enumerate(zip(current, voltage, power), start=1):
            if amps < 0:
                problems.append(f"current_l{n} is negative ({amps:g} A): check the map's type and word order")
                refused = True
            elif amps > config.current_max:
                problems.append(f"current_l{n} {amps:g} A is above current_max {config.current_max:g} A")
                refused = True
            if not 0 <= volts <= VOLTAGE_MAX:
                problems.append(f"voltage_l{n} {volts:g} V is outside 0..{VOLTAGE_MAX:g} V")
                refused = True
            if abs(watts) > VOLTAGE_MAX * config.current_max:
                problems.append(f"power_l{n} {watts:g} W is beyond what {config.current_max:g} A can carry")
                refused = True
            if volts == 0 and amps > CURRENT_WITHOUT_VOLTAGE:
                problems.append(f"L{n} carries {amps:g} A but shows 0 V: check the meter's voltage connection")
        if refused:
            return None, problems
        import_wh = _energy(sample, "import_energy", previous.import_wh if previous else None, problems)
        export_wh = _energy(sample, "export_energy", previous.export_wh if previous else None, problems)
        reading = MeterReading(
            meter_id=config.id, at=sample.at, wall=sample.wall,
            current=(abs(current[0]), abs(current[1]), abs(current[2])),
            voltage=(voltage[0], voltage[1], voltage[2]), power=(power[0], power[1], power[2]),
            import_wh=import_wh, export_wh=export_wh, frequency=_frequency(sample, problems))
        return reading, problems
    except (TypeError, ValueError, OverflowError) as exc:
        # A sample of the wrong shape is a bug upstream; refusing it keeps the
        # load manager on the safe side and the text says what to fix.
        return None, problems + [f"unusable sample: {exc}"]
