"""MeterValue payloads built from a connector snapshot.

Returned as snake_case dicts: the ocpp library turns the keys into camelCase
when it sends them, and tests can read them without a message round trip.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from simulator.connector import ConnectorState


def iso(moment: datetime) -> str:
    """OCPP timestamps: UTC with a Z, milliseconds."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meter_value(at: datetime, state: ConnectorState, *, voltage: float, phases: int,
                measurands: Iterable[str], context: str) -> dict:
    """One MeterValue with the configured measurands; ones the simulator cannot measure are left out."""
    sampled: list[dict] = []

    def add(measurand: str, value: float, unit: str, phase: str | None = None, location: str | None = None) -> None:
        item = {"value": f"{value:.1f}", "context": context, "measurand": measurand, "unit": unit}
        if phase:
            item["phase"] = phase
        if location:
            item["location"] = location
        sampled.append(item)

    wired = range(max(1, min(phases, 3)))
    for measurand in measurands:
        if measurand == "Current.Import":
            for i in wired:
                add(measurand, state.current[i], "A", f"L{i + 1}", "Outlet")
        elif measurand == "Voltage":
            for i in wired:
                add(measurand, voltage, "V", f"L{i + 1}-N", "Outlet")
        elif measurand == "Power.Active.Import":
            add(measurand, state.power_w, "W", location="Outlet")
        elif measurand == "Energy.Active.Import.Register":
            add(measurand, state.energy_wh, "Wh", location="Outlet")
        elif measurand == "SoC" and state.soc is not None:
            add(measurand, state.soc, "Percent", location="EV")
        elif measurand == "Current.Offered":
            add(measurand, state.limit, "A", location="Outlet")
    return {"timestamp": iso(at), "sampled_value": sampled}
