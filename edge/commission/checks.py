"""The commissioning checks as pure functions over plain facts: each returns Check rows.

A check fails where the site would be wrong (a voltage off the grid's band, a
charger that does not take charging profiles while load management needs it),
warns where it may be right but deserves a look (one phase exporting while the
others import), and is skipped where there is nothing to check (no meter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Sequence

from edge.dlm.phases import NAMES

# EN 50160: 230 V +-10 % at the supply terminals; 50 Hz +-1 % for 99.5 % of the year.
VOLTAGE_BAND = (207.0, 253.0)
FREQUENCY_BAND = (49.5, 50.5)
# A phase carrying less than this says nothing about the direction of its CT.
DIRECTION_MIN_A = 1.0
# |P| above V * I by more than this share: the map's scale or the wiring is wrong.
POWER_SLACK = 0.15
CLOCK_TOLERANCE_S = 60.0


@dataclass(frozen=True)
class Check:
    name: str          # "meter grid-meter: voltage"
    status: str        # pass | warn | fail | skip
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def meter_checks(meter_id: str, *, reachable: bool, problem: str | None, voltage: Sequence[float] | None,
                 current: Sequence[float] | None, power: Sequence[float] | None, frequency: float | None,
                 reads_frequency: bool, phases: int = 3) -> list[Check]:
    """A meter's latest good reading against the grid's bands. `reads_frequency`: the meter's
    register map has the frequency (else that check is skipped; with it, a missing value fails)."""
    name = f"meter {meter_id}"
    if not reachable or voltage is None or current is None or power is None:
        return [Check(f"{name}: reachable", "fail", f"no good reading: {problem or 'no answer'}",
                      "check its bus, address (unit), baud rate and wiring; `edgectl dlm` shows its state")]
    out = [Check(f"{name}: reachable", "pass", "answers with readings that pass the plausibility checks")]
    low, high = VOLTAGE_BAND
    bad = [f"{NAMES[i]} {v:.1f} V" for i, v in enumerate(voltage[:phases]) if not low <= v <= high]
    out.append(Check(f"{name}: voltage", "fail" if bad else "pass",
                     (f"outside {low:g}-{high:g} V: " + ", ".join(bad)) if bad else
                     "every phase within " + f"{low:g}-{high:g} V: " +
                     ", ".join(f"{NAMES[i]} {v:.1f} V" for i, v in enumerate(voltage[:phases])),
                     "check the voltage taps and the map's scale" if bad else ""))
    if not reads_frequency:
        out.append(Check(f"{name}: frequency", "skip", "the meter's register map does not read the frequency"))
    elif frequency is None:
        out.append(Check(f"{name}: frequency", "fail", "the meter gave no plausible frequency",
                         "check the map's frequency row (address, type, scale); the edge's log names the value"))
    else:
        lo, hi = FREQUENCY_BAND
        ok = math.isfinite(frequency) and lo <= frequency <= hi
        out.append(Check(f"{name}: frequency", "pass" if ok else "fail", f"{frequency:.2f} Hz"
                         + ("" if ok else f" is outside {lo:g}-{hi:g} Hz"),
                         "" if ok else "a grid off its band (an island or a generator?), or the map's scale"))
    out.append(direction_check(name, voltage[:phases], current[:phases], power[:phases]))
    return out


def direction_check(name: str, voltage: Sequence[float], current: Sequence[float],
                    power: Sequence[float]) -> Check:
    """Current and power agree on every phase: |P| not above V*I, and no phase exporting while
    the others import (the usual sign of a current transformer clipped on the wrong way round)."""
    too_much = [f"{NAMES[i]} {p:.0f} W > {v * a:.0f} VA" for i, (v, a, p) in enumerate(zip(voltage, current, power))
                if abs(p) > v * a * (1 + POWER_SLACK) + 50]
    if too_much:
        return Check(f"{name}: direction", "fail", "power larger than voltage times current: " + ", ".join(too_much),
                     "check the map's scale and which CT feeds which phase")
    loaded = [i for i, a in enumerate(current) if a >= DIRECTION_MIN_A]
    exporting = [i for i in loaded if power[i] < 0]
    importing = [i for i in loaded if power[i] > 0]
    if exporting and importing:
        phases = ", ".join(NAMES[i] for i in exporting)
        return Check(f"{name}: direction", "warn",
                     f"{phases} export(s) while {', '.join(NAMES[i] for i in importing)} import: a current "
                     "transformer the wrong way round, or a generator on that phase",
                     "the rotation detection (--detect-rotation) tells them apart: an inverted CT's power "
                     "falls when a car draws more")
    if not loaded:
        return Check(f"{name}: direction", "skip", f"less than {DIRECTION_MIN_A:g} A on every phase: "
                     "nothing to judge the direction by")
    return Check(f"{name}: direction", "pass", "current and power agree on every loaded phase")


def clock_offset(charger_time: str | None, edge_time: str | None) -> float | None:
    """Seconds the charger's clock is ahead of the edge's (ISO times), None when unknown."""
    if not charger_time or not edge_time:
        return None
    try:
        a = datetime.fromisoformat(charger_time.replace("Z", "+00:00"))
        b = datetime.fromisoformat(edge_time.replace("Z", "+00:00"))
        return (a - b).total_seconds()
    except ValueError:
        return None


def charger_checks(charger_id: str, *, connected: bool, registration: str | None, clock_offset_s: float | None,
                   configuration: dict[str, str] | None, smart_charging_needed: bool, stack_level_needed: int,
                   local_list_needed: int | None) -> list[Check]:
    """One configured charger: connected, booted, its clock, and what its configuration keys say."""
    name = f"charger {charger_id}"
    if not connected:
        return [Check(f"{name}: connected", "fail", "not connected to the edge",
                      "check its central system URL (ws://EDGE:PORT/ocpp/ID), network and password")]
    out = [Check(f"{name}: connected", "pass", "connected")]
    out.append(Check(f"{name}: booted", "pass" if (registration or "").lower() == "accepted" else "fail",
                     f"registration {registration or 'none yet'}",
                     "" if (registration or "").lower() == "accepted" else "wait for its BootNotification or adopt it"))
    if clock_offset_s is None:
        out.append(Check(f"{name}: clock", "warn", "no timestamp from the charger to compare",
                         "its StatusNotifications carry none; charge records use the edge's time"))
    else:
        ok = abs(clock_offset_s) <= CLOCK_TOLERANCE_S
        out.append(Check(f"{name}: clock", "pass" if ok else "fail",
                         f"{round(clock_offset_s):+d} s from the edge's clock",
                         "" if ok else "set its NTP server or time zone; start and stop times would be wrong"))
    if configuration is None:
        out.append(Check(f"{name}: configuration", "fail", "GetConfiguration got no answer"))
        return out
    profiles = {p.strip() for p in configuration.get("SupportedFeatureProfiles", "").split(",") if p.strip()}
    smart = "SmartCharging" in profiles
    out.append(Check(f"{name}: smart charging", "pass" if smart else ("fail" if smart_charging_needed else "warn"),
                     "SmartCharging supported" if smart else
                     f"SupportedFeatureProfiles is {', '.join(sorted(profiles)) or 'empty'}",
                     "" if smart else "set smart_charging = false for it: load management then holds its "
                                      "max_current for it"))
    if smart:
        level = _int(configuration.get("ChargeProfileMaxStackLevel"))
        ok = level is not None and level >= stack_level_needed
        out.append(Check(f"{name}: stack levels", "pass" if ok else "fail",
                         f"ChargeProfileMaxStackLevel {level if level is not None else 'not reported'}"
                         + ("" if ok else f"; the edge uses stack level {stack_level_needed}"),
                         "" if ok else "lower [load_management] stack_level"))
    if local_list_needed is not None:
        capacity = _int(configuration.get("LocalAuthListMaxLength"))
        if "LocalAuthListManagement" not in profiles:
            out.append(Check(f"{name}: local list", "warn", "no LocalAuthListManagement: it cannot charge known "
                             "cards while the edge is away"))
        else:
            ok = capacity is not None and capacity >= local_list_needed
            out.append(Check(f"{name}: local list", "pass" if ok else "warn",
                             f"LocalAuthListMaxLength {capacity if capacity is not None else 'not reported'} for "
                             f"{local_list_needed} card(s)"))
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None
