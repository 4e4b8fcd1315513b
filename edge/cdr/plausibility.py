"""Is a charge record plausible enough to bill? (pure; thresholds passed in)

The statuses follow the operator FAQ (seed 003): **Error** when the data
cannot be true (start in the future, negative energy or duration, more power
than the EVSE can deliver, the same session recorded twice); **Exclusion**
when it is true but not worth billing or not believable as one session (too
little or too much energy, too short or too long); **Successful** otherwise.
Every reason found is listed, not just the first; Error wins over Exclusion.
A record is kept whatever its status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

Status = Literal["Successful", "Error", "Exclusion", "Failed"]
STATUSES: tuple[str, ...] = get_args(Status)   # for the API's and edgectl's --status choices


@dataclass(frozen=True)
class Thresholds:
    min_energy_kwh: float = 0.2
    max_energy_kwh: float = 5000.0
    min_duration_s: float = 60.0
    max_duration_s: float = 14 * 86_400.0
    power_tolerance: float = 0.10           # average power may exceed the EVSE's maximum by this share
    future_tolerance_s: float = 300.0       # a charger clock this far ahead of ours is still fine


@dataclass(frozen=True)
class Facts:
    start: datetime                         # charger time
    start_received: datetime                # edge time the start arrived
    stop: datetime
    energy_wh: float                        # meterStop - meterStart, as reported
    charging_s: float
    evse_max_power_w: float
    duplicate_of: str | None = None         # id of a record of the same physical session
    charging_wh: float | Decimal | None = None   # energy of the charging intervals (None: all of it)


@dataclass(frozen=True)
class Verdict:
    status: Status
    reasons: tuple[str, ...]


def check(facts: Facts, limits: Thresholds = Thresholds()) -> Verdict:
    errors: list[str] = []
    exclusions: list[str] = []
    duration = (facts.stop - facts.start).total_seconds()
    kwh = facts.energy_wh / 1000
    if (facts.start - facts.start_received).total_seconds() > limits.future_tolerance_s:
        errors.append("charging session implausible, start time in the future")
    if facts.energy_wh < 0:
        errors.append("negative energy consumption")
    if duration < 0:
        errors.append("negative session duration")
    if facts.energy_wh > 0 and _power_above(facts, duration, limits.power_tolerance):
        errors.append(f"power implausible for EVSE (average above {facts.evse_max_power_w / 1000:g} kW "
                      f"+{limits.power_tolerance:.0%})")
    if facts.duplicate_of:
        errors.append(f"session data already exists (record {facts.duplicate_of})")
    if 0 <= kwh < limits.min_energy_kwh:
        exclusions.append(f"consumption too low (below {limits.min_energy_kwh:g} kWh)")
    if kwh > limits.max_energy_kwh:
        exclusions.append(f"consumption too high (above {limits.max_energy_kwh:g} kWh)")
    if 0 <= duration < limits.min_duration_s:
        exclusions.append(f"charging duration too short (below {limits.min_duration_s / 60:g} min)")
    if duration > limits.max_duration_s:
        exclusions.append(f"charging duration too long (above {limits.max_duration_s / 86_400:g} days)")
    if errors:
        return Verdict("Error", tuple(errors + exclusions))
    if exclusions:
        return Verdict("Exclusion", tuple(exclusions))
    return Verdict("Successful", ())


def _power_above(facts: Facts, duration: float, tolerance: float) -> bool:
    """The session's average power (edge/cdr/energy.py Usage: energy and time of the same charging
    intervals) above the EVSE's maximum plus the tolerance, decided exactly. A session without any
    charging interval is judged by its whole energy over its whole duration."""
    wh = Decimal(str(facts.energy_wh if facts.charging_wh is None else facts.charging_wh))
    seconds = Decimal(repr(facts.charging_s))
    if facts.charging_s <= 0:
        wh, seconds = Decimal(str(facts.energy_wh)), Decimal(repr(max(duration, 0.0)))
    ceiling = Decimal(repr(facts.evse_max_power_w)) * (1 + Decimal(repr(tolerance)))
    return seconds <= 0 or wh * 3600 > ceiling * seconds
