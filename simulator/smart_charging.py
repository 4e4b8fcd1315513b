"""SetChargingProfile and GetCompositeSchedule against the simulator's state.

The rules that decide a limit live in `simulator.profiles` (pure); this module
applies them to the charge point: which profiles it accepts on which
connector, and what it reports as its composite schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from simulator import electrics, profiles
from simulator.metering import iso

if TYPE_CHECKING:
    from simulator.configuration import Configuration


class ProfileHolder(electrics.Charger, Protocol):
    """What this module reads and changes of the 1.6 charge point (charge_point.py, which imports the
    handlers that call this module): its limits' configuration and the profiles it holds."""

    config: Configuration
    charging_profiles: list[profiles.Installed]

    def settle(self) -> None: ...

    def emit(self, name: str, **data: Any) -> None: ...


def _check(sim: ProfileHolder, connector_id: int, p: profiles.ChargingProfile) -> None:
    config = sim.config
    if connector_id not in sim.connectors:
        raise ValueError(f"there is no connector {connector_id}")
    if p.stack_level > config.number("ChargeProfileMaxStackLevel"):
        raise ValueError(f"stackLevel {p.stack_level} is above ChargeProfileMaxStackLevel")
    if len(p.periods) > config.number("ChargingScheduleMaxPeriods"):
        raise ValueError(f"{len(p.periods)} periods are more than ChargingScheduleMaxPeriods")
    if p.purpose == profiles.CHARGE_POINT_MAX and connector_id != 0:
        raise ValueError("a ChargePointMaxProfile belongs on connector 0")
    if p.purpose == profiles.TX:
        c = sim.connectors[connector_id]
        if connector_id == 0 or not c.busy:
            raise ValueError(f"a TxProfile needs a transaction on connector {connector_id}")
        running = c.transaction.transaction_id if c.transaction else None
        if p.transaction_id is not None and running is not None and p.transaction_id != running:
            raise ValueError(f"transaction {p.transaction_id} is not the one running ({running})")
    installed = profiles.install(sim.charging_profiles, profiles.Installed(connector_id, p))
    if len(installed) > config.number("MaxChargingProfilesInstalled"):
        raise ValueError("MaxChargingProfilesInstalled reached")


def set_charging_profile(sim: ProfileHolder, connector_id: int, data: Mapping[str, Any]) -> str:
    """Install a profile (snake_case, as the ocpp library passes it); Accepted or Rejected."""
    try:
        profile = profiles.parse_profile(data, received=sim.wall_clock())
        _check(sim, connector_id, profile)
    except ValueError as exc:
        sim.emit("charging_profile_rejected", connector_id=connector_id, reason=str(exc))
        return "Rejected"
    sim.settle()  # the old limit held until now
    sim.charging_profiles = profiles.install(sim.charging_profiles, profiles.Installed(connector_id, profile))
    sim.settle()
    sim.emit("charging_profile", connector_id=connector_id, id=profile.id, purpose=profile.purpose,
             stack_level=profile.stack_level, unit=profile.unit,
             limits=[period.limit for period in profile.periods])
    return "Accepted"


def clear_charging_profile(sim: ProfileHolder, **criteria: Any) -> int:
    """Remove the profiles matching `criteria` (see profiles.clear); returns how many went."""
    sim.settle()
    sim.charging_profiles, removed = profiles.clear(sim.charging_profiles, **criteria)
    sim.settle()
    return removed


def composite_schedule(sim: ProfileHolder, connector_id: int, duration: int, unit: str) -> dict | None:
    """The chargingSchedule for GetCompositeSchedule (snake_case), or None to reject."""
    if connector_id not in sim.connectors or unit not in profiles.UNITS or duration < 0:
        return None
    c = sim.connectors[connector_id]
    start = sim.wall_clock()
    periods = profiles.composite(sim.charging_profiles, connector_id, start, duration, electrics.tx_ref(c),
                                 voltage=sim.voltage, phases=electrics.phases_used(sim, c), unit=unit,
                                 ceiling_amps=sim.max_current, sharing=electrics.sharing(sim))
    return {
        "duration": duration,
        "start_schedule": iso(start),
        "charging_rate_unit": unit,
        "charging_schedule_period": [
            {"start_period": p.start, "limit": p.limit,
             **({"number_phases": p.number_phases} if p.number_phases else {})}
            for p in periods],
    }
