"""MeterValue payloads built from a connector snapshot.

Returned as snake_case dicts: the ocpp library turns the keys into camelCase
when it sends them, and tests can read them without a message round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from simulator.connector import ConnectorState


def iso(moment: datetime) -> str:
    """OCPP timestamps: UTC with a Z, milliseconds."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Reading:
    """One measured value, before either OCPP version shapes it into a sampled value."""

    measurand: str
    value: float
    unit: str
    phase: str | None = None
    location: str | None = None


def readings(state: ConnectorState, *, voltage: float, phases: int, measurands: Iterable[str]) -> list[Reading]:
    """The configured measurands the simulator can measure, per phase where OCPP reports them so."""
    found: list[Reading] = []
    wired = range(max(1, min(phases, 3)))
    for measurand in measurands:
        if measurand == "Current.Import":
            found += [Reading(measurand, state.current[i], "A", f"L{i + 1}", "Outlet") for i in wired]
        elif measurand == "Voltage":
            found += [Reading(measurand, voltage, "V", f"L{i + 1}-N", "Outlet") for i in wired]
        elif measurand == "Power.Active.Import":
            found.append(Reading(measurand, state.power_w, "W", location="Outlet"))
        elif measurand == "Energy.Active.Import.Register":
            found.append(Reading(measurand, state.energy_wh, "Wh", location="Outlet"))
        elif measurand == "SoC" and state.soc is not None:
            found.append(Reading(measurand, state.soc, "Percent", location="EV"))
        elif measurand == "Current.Offered":
            found.append(Reading(measurand, state.limit, "A", location="Outlet"))
    return found


def meter_value(at: datetime, state: ConnectorState, *, voltage: float, phases: int,
                measurands: Iterable[str], context: str) -> dict:
    """One OCPP 1.6 MeterValue with the configured measurands; ones the simulator cannot measure are left out."""
    sampled: list[dict] = []
    for r in readings(state, voltage=voltage, phases=phases, measurands=measurands):
        item = {"value": f"{r.value:.1f}", "context": context, "measurand": r.measurand, "unit": r.unit}
        if r.phase:
            item["phase"] = r.phase
        if r.location:
            item["location"] = r.location
        sampled.append(item)
    return {"timestamp": iso(at), "sampled_value": sampled}
