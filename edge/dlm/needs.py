"""A session's needs: when its car leaves and how much energy it wants. Pure; times passed in.

The `scheduled` strategy (edge.dlm.planner) serves early leavers first; it learns a
session's departure and energy from the local API (a driver or an app says so),
from the user group's default (`[[user_groups]] departure = "17:30"`), or, for
what neither says, from the token's own past sessions (`learned`: the medians of
its last ten on the same kind of day, at least three; never over a declared value). What is
declared is kept in wall time (a driver means a time of day); the planner gets it in
monotonic seconds, and the energy still wanted: the declared energy less what the
session's meter shows it delivered.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, Iterable

# A departure further ahead than this is a typo (a date), not a plan.
MAX_AHEAD = timedelta(hours=48)
# More than any car's battery: a larger need is a unit mistake (Wh for kWh).
MAX_ENERGY_KWH = 200.0
ENERGY = "Energy.Active.Import.Register"
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Declared:
    """What was said about one session: its departure (wall, aware) and energy for the whole session."""

    departure: datetime | None
    energy_wh: float | None
    source: str                     # "api", "user group residents", "learned from the token's last 5 weekday sessions"


class NeedError(ValueError):
    """A need out of bounds; names the field and the value."""

    def __init__(self, field: str, value: Any, why: str):
        self.field, self.value = field, value
        super().__init__(f"{field} {value!r}: {why}")


def time_of_day(text: str) -> time:
    """"17:30" -> 17:30; a ValueError that says what is wrong otherwise."""
    m = _TIME_OF_DAY.match(text.strip()) if isinstance(text, str) else None
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{text!r} is not a time of day like '17:30'")
    return time(int(m.group(1)), int(m.group(2)))


def next_at(at: time, now: datetime, tz: tzinfo) -> datetime:
    """The next `at` in the site's time zone after `now` (today, or tomorrow if it has passed)."""
    local = now.astimezone(tz)
    for days in (0, 1, 2):
        candidate = datetime.combine(local.date() + timedelta(days=days), at, tzinfo=tz)
        if candidate > local:
            return candidate
    raise AssertionError("unreachable")


def departure_of(value: Any, now: datetime, tz: tzinfo) -> datetime:
    """A departure from the API: ISO 8601 (without an offset: the site's time) or "HH:MM"
    (the next such time at the site); after now, at most MAX_AHEAD ahead."""
    if not isinstance(value, str) or not value.strip():
        raise NeedError("departure", value, "give an ISO 8601 time or a time of day like '17:30'")
    try:
        if _TIME_OF_DAY.match(value.strip()):
            at = next_at(time_of_day(value), now, tz)
        else:
            at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            at = at if at.tzinfo is not None else at.replace(tzinfo=tz)
    except ValueError:
        raise NeedError("departure", value, "is not an ISO 8601 time or a time of day like '17:30'") from None
    if at <= now:
        raise NeedError("departure", value, f"is not after now ({now.isoformat(timespec='seconds')})")
    if at - now > MAX_AHEAD:
        raise NeedError("departure", value, f"is more than {MAX_AHEAD.total_seconds() / 3600:g} h ahead")
    return at


def energy_of(value: Any, field: str = "energy_kwh") -> float:
    """kWh, > 0 and at most MAX_ENERGY_KWH."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NeedError(field, value, "must be a number of kWh")
    if not 0 < value <= MAX_ENERGY_KWH:
        raise NeedError(field, value, f"must be more than 0 and at most {MAX_ENERGY_KWH:g} kWh")
    return float(value)


def register_wh(samples: Iterable[Any]) -> float | None:
    """The highest energy register (Wh) in one MeterValues, or None when it carries none."""
    values = []
    for s in samples:
        if s.measurand == ENERGY and not s.phase and math.isfinite(s.value):
            if s.unit in (None, "Wh"):
                values.append(s.value)
            elif s.unit == "kWh":
                values.append(s.value * 1000.0)
    return max(values, default=None)


def still_wanted(declared_wh: float | None, start_wh: float | None, register: float | None) -> float:
    """Energy still wanted (Wh): the declared need less what the meter shows delivered since
    the start; inf when no energy was declared. A need met is 0 (the caller decides)."""
    if declared_wh is None:
        return math.inf
    delivered = register - start_wh if register is not None and start_wh is not None else 0.0
    return max(0.0, declared_wh - max(0.0, delivered))


# --- learned from the token's history ------------------------------------------------------------

# A need learned from a token's past sessions: its last LEARN_FROM on the same kind of day
# (weekday or weekend: commuters and weekend visitors leave at other times), at least LEARN_AT_LEAST.
LEARN_FROM = 10
LEARN_AT_LEAST = 3
LEARNED = "learned from the token's last"


@dataclass(frozen=True)
class PastSession:
    """One completed session of a token: when it started and stopped (edge time, aware) and its energy."""

    start: datetime
    stop: datetime
    energy_wh: float


def learned(history: Iterable[PastSession], now: datetime, tz: tzinfo) -> Declared | None:
    """A departure and energy from a token's past sessions, None with fewer than LEARN_AT_LEAST
    on the same kind of day. Departure: the median time of day it left, next at the site; when
    that is further ahead than its longest stay (it came later than usual), now plus its median
    stay. Energy: the median it took (what it got, which may be less than it wanted)."""
    weekend = now.astimezone(tz).weekday() >= 5
    same = sorted((s for s in history if s.stop > s.start and (s.start.astimezone(tz).weekday() >= 5) == weekend),
                  key=lambda s: s.start, reverse=True)[:LEARN_FROM]
    if len(same) < LEARN_AT_LEAST:
        return None
    minutes = int(_median([_minute_of_day(s.stop, tz) for s in same]))
    departure = next_at(time(minutes // 60, minutes % 60), now, tz)
    stays = [s.stop - s.start for s in same]
    if departure - now > max(stays):
        departure = now + _median(stays)
    departure = min(departure, now + MAX_AHEAD)
    energy = _median([s.energy_wh for s in same])
    energy_wh = min(energy, MAX_ENERGY_KWH * 1000.0) if energy > 0 else None
    return Declared(departure, energy_wh, f"{LEARNED} {len(same)} {'weekend' if weekend else 'weekday'} sessions")


def with_learned(declared: Declared | None, learned_need: Declared | None) -> Declared | None:
    """What was declared (API, user group) wins; what it leaves out is filled from what was learned."""
    if declared is None or learned_need is None:
        return declared or learned_need
    if declared.departure is not None and declared.energy_wh is not None:
        return declared
    filled = [name for name, mine in (("departure", declared.departure), ("energy", declared.energy_wh))
              if mine is None]
    return Declared(declared.departure or learned_need.departure,
                    declared.energy_wh if declared.energy_wh is not None else learned_need.energy_wh,
                    f"{declared.source}; {' and '.join(filled)} {learned_need.source}")


def _minute_of_day(moment: datetime, tz: tzinfo) -> int:
    local = moment.astimezone(tz)
    return local.hour * 60 + local.minute


def _median(values: list):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else ordered[middle - 1] + (ordered[middle] - ordered[middle - 1]) / 2


# --- declared by the car itself (ISO 15118, through OCPP 2.0.1 NotifyEVChargingNeeds) -------------

ISO15118 = "iso15118"


@dataclass(frozen=True)
class FromCar:
    """What a car said of itself, read for the planner: the need (None when nothing usable is left),
    what was clamped or dropped (each a sentence for the log), and the car's own limits as it gave them."""

    need: Declared | None
    notes: tuple[str, ...]
    phases: int | None = None              # AC_single_phase 1, AC_two_phase 2, AC_three_phase 3; DC None
    min_current: float | None = None       # A per phase (AC)
    max_current: float | None = None       # A per phase (AC), or the DC current
    max_voltage: float | None = None
    max_power: float | None = None         # W (DC evMaxPower)

    def max_per_phase(self, voltage: float = 230.0) -> float | None:
        """A per phase the car takes at most from an AC grid, for the planner (planner.plan_cars'
        `said`): AC, its evMaxCurrent; DC, its most power (evMaxPower, else evMaxCurrent times
        evMaxVoltage) over three phases at `voltage`; None when it did not say."""
        if self.phases is not None:         # AC
            return self.max_current if self.max_current is not None and self.max_current > 0 else None
        power = self.max_power
        if power is None and self.max_current is not None and self.max_voltage is not None:
            power = self.max_current * self.max_voltage
        return power / (3 * voltage) if power is not None and power > 0 else None


_PHASES = {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}


def from_car(charging_needs: Any, now: datetime) -> FromCar:
    """An ISO 15118 car's charging needs (2.0.1 ChargingNeedsType, snake_case) as a declared need with
    source ISO15118. Never raises: a departure that is not a time, or not after now, is dropped; one more
    than MAX_AHEAD ahead is planned at MAX_AHEAD; an energy of 0 or less is none, more than
    MAX_ENERGY_KWH is planned as MAX_ENERGY_KWH (a car larger than any battery is a unit mistake, and
    planning it in full would starve the others). Energy: energyAmount (Wh), AC's or DC's; for DC without
    it, the battery's room to fullSoC from stateOfCharge and evEnergyCapacity."""
    notes: list[str] = []
    needs = charging_needs if isinstance(charging_needs, dict) else {}
    departure = _car_departure(needs.get("departure_time"), now, notes)
    ac = needs.get("ac_charging_parameters") if isinstance(needs.get("ac_charging_parameters"), dict) else {}
    dc = needs.get("dc_charging_parameters") if isinstance(needs.get("dc_charging_parameters"), dict) else {}
    energy_wh = _car_energy(ac, dc, notes)
    limits = ac or dc
    need = Declared(departure, energy_wh, ISO15118) if departure is not None or energy_wh is not None else None
    return FromCar(need, tuple(notes), _PHASES.get(str(needs.get("requested_energy_transfer"))),
                   _number(limits.get("ev_min_current")), _number(limits.get("ev_max_current")),
                   _number(limits.get("ev_max_voltage")), _number(dc.get("ev_max_power")) if dc else None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _car_departure(value: Any, now: datetime, notes: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError("no offset")
    except (ValueError, OverflowError):
        notes.append(f"departureTime {str(value)[:40]!r} is not a time with an offset: no departure")
        return None
    if at <= now:
        notes.append(f"departureTime {at.isoformat()} is not after now ({now.isoformat(timespec='seconds')}): "
                     "no departure")
        return None
    if at - now > MAX_AHEAD:
        clamped = now + MAX_AHEAD
        notes.append(f"departureTime {at.isoformat()} is more than {MAX_AHEAD.total_seconds() / 3600:g} h ahead: "
                     f"planned at {clamped.isoformat(timespec='seconds')}")
        return clamped
    return at


def _car_energy(ac: dict, dc: dict, notes: list[str]) -> float | None:
    amount = _number(ac.get("energy_amount")) if ac else None
    if amount is None and dc:
        amount = _number(dc.get("energy_amount"))
        soc, capacity = _number(dc.get("state_of_charge")), _number(dc.get("ev_energy_capacity"))
        full = _number(dc.get("full_soc"))
        if amount is None and soc is not None and capacity is not None:
            amount = max(0.0, ((full if full is not None else 100.0) - soc) / 100.0 * capacity)
    if amount is None:
        return None
    if amount <= 0:
        notes.append(f"energyAmount {amount:g} Wh: no energy asked")
        return None
    most = MAX_ENERGY_KWH * 1000.0
    if amount > most:
        notes.append(f"energyAmount {amount:g} Wh is more than {MAX_ENERGY_KWH:g} kWh: planned as {most:g} Wh")
        return most
    return amount
