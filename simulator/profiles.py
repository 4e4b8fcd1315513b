"""OCPP 1.6 charging profiles as plain data, and which limit applies when.

Pure functions with time passed in: the stacking rules (ChargePointMaxProfile
caps everything, a TxProfile overrides the TxDefaultProfile, the highest stack
level that has a period at that moment wins) are where a simulator would lie
to the load manager it is meant to test, so they get table tests of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX)
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}
UNITS = ("A", "W")


@dataclass(frozen=True)
class Period:
    start: int  # seconds after the schedule starts
    limit: float  # in the profile's unit
    number_phases: int | None = None


@dataclass(frozen=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: str
    kind: str
    unit: str
    periods: tuple[Period, ...]
    duration: int | None = None
    start_schedule: datetime | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None


@dataclass(frozen=True)
class Installed:
    connector_id: int  # 0: the whole charge point
    profile: ChargingProfile


@dataclass(frozen=True)
class TxRef:
    """The running transaction a Relative or TxProfile schedule refers to."""

    started: datetime
    transaction_id: int | None = None


@dataclass(frozen=True)
class Limit:
    amps: float
    phases: int | None = None  # a period's numberPhases, when one says so


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _optional(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None else convert(value)


def parse_profile(data: Mapping[str, Any], *, received: datetime) -> ChargingProfile:
    """A profile from the snake_case dict the ocpp library hands to a handler.

    Numbers may arrive as Decimal (the library parses smart-charging payloads
    that way). An Absolute schedule without startSchedule starts when received,
    as most chargers do. Raises ValueError naming what is wrong.
    """
    try:
        schedule = data["charging_schedule"]
        periods = tuple(sorted(
            (Period(int(p["start_period"]), float(p["limit"]), _optional(p.get("number_phases"), int))
             for p in schedule["charging_schedule_period"]),
            key=lambda p: p.start))
        profile = ChargingProfile(
            id=int(data["charging_profile_id"]),
            stack_level=int(data["stack_level"]),
            purpose=str(data["charging_profile_purpose"]),
            kind=str(data["charging_profile_kind"]),
            unit=str(schedule["charging_rate_unit"]),
            periods=periods,
            duration=_optional(schedule.get("duration"), int),
            start_schedule=_optional(schedule.get("start_schedule"), parse_time),
            recurrency=_optional(data.get("recurrency_kind"), str),
            valid_from=_optional(data.get("valid_from"), parse_time),
            valid_to=_optional(data.get("valid_to"), parse_time),
            transaction_id=_optional(data.get("transaction_id"), int),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid charging profile: {exc!r}") from exc
    if profile.purpose not in PURPOSES:
        raise ValueError(f"unknown chargingProfilePurpose {profile.purpose!r}")
    if profile.kind not in KINDS:
        raise ValueError(f"unknown chargingProfileKind {profile.kind!r}")
    if profile.unit not in UNITS:
        raise ValueError(f"unknown chargingRateUnit {profile.unit!r}")
    if not periods or periods[0].start != 0:
        raise ValueError("the first chargingSchedulePeriod must start at 0")
    if profile.kind == "Recurring" and (profile.recurrency not in RECURRENCE or profile.start_schedule is None):
        raise ValueError("a Recurring profile needs recurrencyKind and startSchedule")
    if profile.kind == "Absolute" and profile.start_schedule is None:
        profile = replace(profile, start_schedule=received)
    return profile


def install(installed: Iterable[Installed], new: Installed) -> list[Installed]:
    """As OCPP 1.6 SetChargingProfile says: same id, or same connector, purpose and stack level, is replaced."""
    p = new.profile
    kept = [i for i in installed
            if i.profile.id != p.id
            and not (i.connector_id == new.connector_id and i.profile.purpose == p.purpose
                     and i.profile.stack_level == p.stack_level)]
    return [*kept, new]


def clear(installed: Iterable[Installed], *, profile_id: int | None = None, connector_id: int | None = None,
          purpose: str | None = None, stack_level: int | None = None) -> tuple[list[Installed], int]:
    """ClearChargingProfile: by id, or by every criterion given. Returns (kept, number removed)."""
    def matches(i: Installed) -> bool:
        if profile_id is not None:
            return i.profile.id == profile_id
        return ((connector_id is None or i.connector_id == connector_id)
                and (purpose is None or i.profile.purpose == purpose)
                and (stack_level is None or i.profile.stack_level == stack_level))

    everything = list(installed)
    kept = [i for i in everything if not matches(i)]
    return kept, len(everything) - len(kept)


def _schedule_start(p: ChargingProfile, at: datetime, tx: TxRef | None) -> datetime | None:
    if p.kind == "Relative":
        # Without a transaction a Relative schedule is read as if one started now.
        return tx.started if tx else at
    assert p.start_schedule is not None
    if p.kind == "Recurring":
        if at < p.start_schedule:
            return None
        every = RECURRENCE[p.recurrency or "Daily"]
        return p.start_schedule + ((at - p.start_schedule) // every) * every
    return p.start_schedule


def period_at(p: ChargingProfile, at: datetime, tx: TxRef | None = None) -> Period | None:
    """The period of `p` in force at `at`, or None when the profile says nothing then."""
    if (p.valid_from and at < p.valid_from) or (p.valid_to and at >= p.valid_to):
        return None
    start = _schedule_start(p, at, tx)
    if start is None or at < start:
        return None
    offset = (at - start).total_seconds()
    if p.duration is not None and offset >= p.duration:
        return None
    current = None
    for period in p.periods:
        if period.start > offset:
            break
        current = period
    return current


def to_amps(limit: float, unit: str, *, voltage: float, phases: int) -> float:
    return limit if unit == "A" else limit / (voltage * phases)


def _winner(candidates: Iterable[Installed], at: datetime, tx: TxRef | None,
            voltage: float, phases: int) -> Limit | None:
    for i in sorted(candidates, key=lambda i: -i.profile.stack_level):
        period = period_at(i.profile, at, tx)
        if period is not None:
            used = min(phases, period.number_phases or phases)
            return Limit(to_amps(period.limit, i.profile.unit, voltage=voltage, phases=used), period.number_phases)
    return None


def active_limit(installed: Iterable[Installed], connector_id: int, at: datetime, tx: TxRef | None, *,
                 voltage: float, phases: int, sharing: int = 1) -> Limit | None:
    """The limit per phase in amps on `connector_id` at `at`, or None when no profile applies.

    `phases` is the number of phases actually used, for converting W to A.
    The ChargePointMaxProfile holds for the whole charge point, so it is split
    evenly between the `sharing` connectors that charge. Connector 0 only
    answers to ChargePointMaxProfile.
    """
    profiles = list(installed)

    def pick(connector: int, purpose: str) -> Limit | None:
        chosen = [i for i in profiles if i.connector_id == connector and i.profile.purpose == purpose
                  and (purpose != TX or i.profile.transaction_id in (None, tx and tx.transaction_id))]
        return _winner(chosen, at, tx, voltage, phases)

    charge_point_max = pick(0, CHARGE_POINT_MAX)
    if charge_point_max and connector_id != 0:
        charge_point_max = replace(charge_point_max, amps=charge_point_max.amps / max(1, sharing))
    limits = [charge_point_max]
    if connector_id != 0:
        tx_limit = pick(connector_id, TX) if tx else None
        limits.append(tx_limit or pick(connector_id, TX_DEFAULT) or pick(0, TX_DEFAULT))
    found = [lim for lim in limits if lim is not None]
    if not found:
        return None
    phase_caps = [lim.phases for lim in found if lim.phases is not None]
    return Limit(min(lim.amps for lim in found), min(phase_caps) if phase_caps else None)


def _boundaries(p: ChargingProfile, start: datetime, end: datetime, tx: TxRef | None) -> Iterator[datetime]:
    """Moments in [start, end) where `p` may change what it says."""
    yield from (t for t in (p.valid_from, p.valid_to) if t is not None)
    if p.kind == "Relative":
        anchors = [tx.started] if tx else []
    elif p.kind == "Recurring":
        anchor = _schedule_start(p, start, tx) or p.start_schedule
        assert anchor is not None
        anchors = []
        while anchor < end:
            anchors.append(anchor)
            anchor += RECURRENCE[p.recurrency or "Daily"]
    else:
        anchors = [p.start_schedule] if p.start_schedule else []
    for anchor in anchors:
        yield from (anchor + timedelta(seconds=period.start) for period in p.periods)
        if p.duration is not None:
            yield anchor + timedelta(seconds=p.duration)


def composite(installed: Iterable[Installed], connector_id: int, start: datetime, duration: int,
              tx: TxRef | None, *, voltage: float, phases: int, unit: str, ceiling_amps: float,
              sharing: int = 1) -> list[Period]:
    """GetCompositeSchedule: the limits the charger will apply from `start` for `duration` s.

    Where no profile applies the charger's own maximum (`ceiling_amps`) does.
    Limits are rounded to the 0.1 the OCPP schema allows.
    """
    profiles = list(installed)
    end = start + timedelta(seconds=duration)
    moments = {start} | {t for i in profiles for t in _boundaries(i.profile, start, end, tx) if start < t < end}
    result: list[Period] = []
    for moment in sorted(moments):
        limit = active_limit(profiles, connector_id, moment, tx, voltage=voltage, phases=phases, sharing=sharing)
        amps = min(ceiling_amps, limit.amps) if limit else ceiling_amps
        number_phases = limit.phases if limit else None
        used = min(phases, number_phases or phases)
        value = round(amps if unit == "A" else amps * voltage * used, 1)
        period = Period(int((moment - start).total_seconds()), value, number_phases)
        if result and (result[-1].limit, result[-1].number_phases) == (value, number_phases):
            continue
        if result and result[-1].start == period.start:
            result[-1] = period
        else:
            result.append(period)
    return result
