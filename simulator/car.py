"""Physics of a car on a charger: the current it draws and the energy it takes.

Pure functions over plain values, no clock of their own: the caller passes the
elapsed time, so a test can jump hours ahead in one step and still get exact
energy (the ramp is integrated in closed form, not sampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# IEC 61851: below 6 A the PWM signal no longer allows charging, the car pauses.
MIN_CURRENT = 6.0
BATTERY_WH = 60_000.0

Phases = tuple[float, float, float]
NO_CURRENT: Phases = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Car:
    max_current: float = 32.0
    phases: int = 3
    capacity_wh: float = BATTERY_WH


@dataclass(frozen=True)
class Meter:
    """What the charger's meter sees on one connector; soc is None without a car."""

    currents: Phases = NO_CURRENT
    energy_wh: float = 0.0
    soc: float | None = None


def power_w(currents: Phases, voltage: float) -> float:
    return voltage * sum(currents)


def target_currents(offered: float, car: Car | None, soc: float | None, phases: int) -> Phases:
    """Per-phase current the car settles at when offered `offered` amps on `phases` phases.

    `phases` is what the charger can give (its wiring, narrowed by a charging
    profile's numberPhases); the car may use fewer (a 1-phase car uses L1 only).
    """
    if car is None or (soc is not None and soc >= 100.0):
        return NO_CURRENT
    amps = min(offered, car.max_current)
    if amps < MIN_CURRENT:
        return NO_CURRENT
    used = max(1, min(car.phases, phases, 3))
    return tuple(amps if i < used else 0.0 for i in range(3))  # type: ignore[return-value]


def ramp(current: float, target: float, dt: float, slew: float) -> tuple[float, float]:
    """Move `current` towards `target` at `slew` A/s for `dt` seconds.

    Returns the new current and the integral of the current over the step (A*s).
    """
    if dt <= 0:
        return current, 0.0
    gap = target - current
    reach = abs(gap) / slew if slew > 0 and math.isfinite(slew) else 0.0
    if dt >= reach:
        return target, (current + target) / 2 * reach + target * (dt - reach)
    new = current + math.copysign(slew * dt, gap)
    return new, (current + new) / 2 * dt


def step(meter: Meter, target: Phases, dt: float, *, slew: float, voltage: float,
         capacity_wh: float = BATTERY_WH) -> Meter:
    """Advance the meter by `dt` seconds with the car heading for `target`."""
    if dt <= 0:
        return meter
    moved = [ramp(i, t, dt, slew) for i, t in zip(meter.currents, target)]
    currents: Phases = tuple(c for c, _ in moved)  # type: ignore[assignment]
    added_wh = voltage * sum(area for _, area in moved) / 3600.0
    soc = meter.soc
    if soc is not None:
        room_wh = max(0.0, (100.0 - soc) / 100.0 * capacity_wh)
        if added_wh >= room_wh:  # full within this step: the battery takes no more, the car stops drawing
            added_wh, currents = room_wh, NO_CURRENT
        soc = min(100.0, soc + added_wh / capacity_wh * 100.0)
    return Meter(currents=currents, energy_wh=meter.energy_wh + added_wh, soc=soc)
