"""OCPP 2.0.1 charging profiles, translated onto the version-agnostic rules of `simulator.profiles`.

2.0.1 names the whole-station profile ChargingStationMaxProfile, puts the
schedule in a list, calls the connector an EVSE and identifies transactions
by a string; the stacking rules (max profile caps, TxProfile overrides
TxDefaultProfile, highest stack level wins) are the same as in 1.6. What 2.0.1
adds is stricter checking of a new profile (K01.FR.*), done here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from simulator import profiles

STATION_MAX = "ChargingStationMaxProfile"
EXTERNAL = "ChargingStationExternalConstraints"
# 2.0.1 purpose -> the purpose simulator.profiles stacks by
PURPOSES = {STATION_MAX: profiles.CHARGE_POINT_MAX, "TxDefaultProfile": profiles.TX_DEFAULT, "TxProfile": profiles.TX}


@dataclass(frozen=True)
class Stored:
    """An accepted profile: as the CSMS sent it (for ReportChargingProfiles) and as the rules read it."""

    evse_id: int
    raw: dict  # snake_case, as the ocpp library handed it over
    installed: profiles.Installed


def parse(raw: Mapping[str, Any], *, received: datetime) -> profiles.ChargingProfile:
    """The first chargingSchedule of a 2.0.1 ChargingProfile (snake_case) as profiles.ChargingProfile.

    Raises ValueError naming the requirement that is broken.
    """
    purpose = raw.get("charging_profile_purpose")
    if purpose == EXTERNAL:
        raise ValueError("ChargingStationExternalConstraints is set by an external system, not the CSMS (K01.FR.22)")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown chargingProfilePurpose {purpose!r}")
    schedules = raw.get("charging_schedule") or []
    if len(schedules) != 1:
        raise ValueError("an AC station takes exactly one chargingSchedule")
    schedule = schedules[0]
    kind = raw.get("charging_profile_kind")
    if kind in ("Absolute", "Recurring") and schedule.get("start_schedule") is None:
        raise ValueError(f"an {kind} profile needs startSchedule (K01.FR.40)")
    if kind == "Relative" and schedule.get("start_schedule") is not None:
        raise ValueError("a Relative profile has no startSchedule (K01.FR.41)")
    if purpose == STATION_MAX and kind == "Relative":
        raise ValueError("a ChargingStationMaxProfile cannot be Relative (K01.FR.38)")
    starts = [int(p["start_period"]) for p in schedule.get("charging_schedule_period", [])]
    if starts != sorted(set(starts)):
        raise ValueError("chargingSchedulePeriod startPeriods must increase (K01.FR.35)")
    if any(p.get("phase_to_use") is not None for p in schedule.get("charging_schedule_period", [])):
        raise ValueError("phaseToUse needs phase switching, which this station lacks (K01.FR.20)")
    # The 1.6-shaped fields simulator.profiles.parse_profile reads.
    v16 = {
        "charging_profile_id": raw["id"], "stack_level": raw["stack_level"], "charging_profile_purpose":
            PURPOSES[purpose], "charging_profile_kind": kind, "recurrency_kind": raw.get("recurrency_kind"),
        "valid_from": raw.get("valid_from"), "valid_to": raw.get("valid_to"),
        "charging_schedule": {k: schedule.get(k) for k in ("charging_rate_unit", "charging_schedule_period",
                                                            "duration", "start_schedule")},
    }
    parsed = profiles.parse_profile(v16, received=received)
    # 2.0.1 transaction ids are strings: kept as they are, so a TxProfile matches the station's id.
    return replace(parsed, transaction_id=raw.get("transaction_id"))


def _overlap(a: profiles.ChargingProfile, b: profiles.ChargingProfile) -> bool:
    """Whether the validity periods of `a` and `b` share a moment (no bound: open on that side)."""
    return ((a.valid_to is None or b.valid_from is None or b.valid_from < a.valid_to)
            and (b.valid_to is None or a.valid_from is None or a.valid_from < b.valid_to))


def check(stored: Iterable[Stored], evse_id: int, p: profiles.ChargingProfile, *, evses: int,
          transaction_id: str | None, max_stack_level: int, max_periods: int) -> None:
    """Raise ValueError when the station must answer Rejected; `transaction_id` is the one running on the EVSE."""
    if not 0 <= evse_id <= evses:
        raise ValueError(f"there is no EVSE {evse_id} (K01.FR.28)")
    if p.purpose == profiles.CHARGE_POINT_MAX and evse_id != 0:
        raise ValueError("a ChargingStationMaxProfile belongs on evseId 0 (K01.FR.03)")
    if p.stack_level > max_stack_level:
        raise ValueError(f"stackLevel {p.stack_level} is above ProfileStackLevel {max_stack_level}")
    if len(p.periods) > max_periods:
        raise ValueError(f"{len(p.periods)} periods are more than PeriodsPerSchedule {max_periods}")
    if p.purpose == profiles.TX:
        if evse_id == 0:
            raise ValueError("a TxProfile needs an evseId above 0 (K01.FR.16)")
        if p.transaction_id is None:
            raise ValueError("a TxProfile needs a transactionId (K01.FR.03)")
        if transaction_id is None:
            raise ValueError(f"EVSE {evse_id} has no transaction (K01.FR.09)")
        if p.transaction_id != transaction_id:
            raise ValueError(f"transaction {p.transaction_id} is not the one on EVSE {evse_id} (K01.FR.33)")
    for s in stored:
        other = s.installed.profile
        if (other.id != p.id and s.evse_id == evse_id and other.purpose == p.purpose
                and other.stack_level == p.stack_level and other.transaction_id == p.transaction_id
                and _overlap(other, p)):
            raise ValueError(f"profile {other.id} has the same stackLevel and purpose at the same time (K01.FR.39)")


def install(stored: Iterable[Stored], new: Stored) -> list[Stored]:
    """A profile with the same id is replaced (K01.FR.05); check() has refused every other conflict."""
    return [*(s for s in stored if s.installed.profile.id != new.installed.profile.id), new]


def clear(stored: Iterable[Stored], *, profile_id: int | None = None,
          criteria: Mapping[str, Any] | None = None) -> tuple[list[Stored], int]:
    """ClearChargingProfile: by id, or by every criterion given (evseId, purpose, stackLevel)."""
    crit = criteria or {}

    def matches(s: Stored) -> bool:
        if profile_id is not None:
            return s.installed.profile.id == profile_id
        return ((crit.get("evse_id") is None or s.evse_id == crit["evse_id"])
                and (crit.get("charging_profile_purpose") is None
                     or s.raw["charging_profile_purpose"] == crit["charging_profile_purpose"])
                and (crit.get("stack_level") is None or s.installed.profile.stack_level == crit["stack_level"]))
    everything = list(stored)
    kept = [s for s in everything if not matches(s)]
    return kept, len(everything) - len(kept)


def select(stored: Iterable[Stored], evse_id: int | None, criterion: Mapping[str, Any]) -> list[Stored]:
    """GetChargingProfiles: the profiles matching the evse and every criterion given."""
    ids = criterion.get("charging_profile_id")
    sources = criterion.get("charging_limit_source")
    return [s for s in stored
            if (evse_id is None or s.evse_id == evse_id)
            and (criterion.get("charging_profile_purpose") is None
                 or s.raw["charging_profile_purpose"] == criterion["charging_profile_purpose"])
            and (criterion.get("stack_level") is None or s.installed.profile.stack_level == criterion["stack_level"])
            and (not ids or s.installed.profile.id in ids)
            and (not sources or "CSO" in sources)]
