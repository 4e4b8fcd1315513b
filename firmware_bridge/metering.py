"""MeterValue payloads from a wallbox reading (pure; snake_case, as the ocpp library takes them)."""

from __future__ import annotations

from datetime import datetime

from edge.clock import iso
from firmware_bridge.drivers.base import Mode, WallboxState


def meter_value(at: datetime, state: WallboxState, *, phases: int, nominal_voltage: float, context: str) -> dict:
    """One MeterValue: energy register, current, voltage, power and the current offered.

    Wallbox boards measure one current and (if at all) one voltage. On a
    three-phase installation the vehicle draws about the same on each phase,
    so that current is reported on every wired phase and counted in the power.
    """
    voltage = state.voltage if state.voltage > 0 else nominal_voltage  # no voltmeter: the nominal voltage

    def sample(measurand: str, value: str, unit: str, phase: str | None = None) -> dict:
        item = {"value": value, "context": context, "measurand": measurand, "unit": unit, "location": "Outlet"}
        if phase:
            item["phase"] = phase
        return item

    sampled = [sample("Energy.Active.Import.Register", str(state.energy_wh), "Wh")]
    sampled += [sample("Current.Import", f"{state.current:.2f}", "A", f"L{i}") for i in range(1, phases + 1)]
    sampled.append(sample("Voltage", f"{voltage:.1f}", "V", "L1-N"))
    sampled.append(sample("Power.Active.Import", f"{state.current * voltage * phases:.0f}", "W"))
    if state.offered_current is not None:  # asleep or disabled, the pilot offers nothing whatever it is set to
        offered = state.offered_current if state.mode == Mode.ENABLED else 0
        sampled.append(sample("Current.Offered", str(offered), "A"))
    return {"timestamp": iso(at), "sampled_value": sampled}
