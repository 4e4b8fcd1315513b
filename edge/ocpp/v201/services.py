"""OCPP 2.0.1 blocks J, K (the car's needs), L, N and P at the edge: what the 2.0.1 session's handlers
(edge/ocpp/v201/session.py, thin @on methods) delegate to. Each goes into the same domain path as
its 1.6 counterpart; what is 2.0.1's own is here. Choices where the issue is silent: docs/ocpp-201.md.

- J MeterValues (evseId, meterValue): the same samples store as 1.6's MeterValues (Sessions.meter_values),
  per phase, kept with the transaction running on that EVSE (2.0.1's MeterValues names none); EVSE 0 is
  the station's main meter, as 1.6's connector 0. Signed values go where 1.6's do (signed_values.py).
- K NotifyEVChargingNeeds: the car's departure and energy (ISO 15118) as a Declared need, source
  "iso15118", for the running transaction on that EVSE, through the load manager's one door for needs
  (LoadManager.set_needs, as the local API's); Accepted, the load manager then sends the transaction's
  TxProfile again (a renegotiation, K15-K17). NotifyEVChargingSchedule is checked against the TxProfile the
  site holds the transaction to: Rejected above it (and renegotiated), else Accepted; kept and logged.
  ReportChargingProfiles are kept per request for the operator (bounded; both in the journal before the answer,
  read back at the edge's start). External limits
  (NotifyChargingLimit, ClearedChargingLimit, reported external-constraints profiles): charging_limits.py.
- L FirmwareStatusNotification and N LogStatusNotification: kept with the request, as 1.6's signed
  firmware and log statuses (firmware.py, logs_upload.py, which send 2.0.1's UpdateFirmware and GetLog).
- N NotifyEvent: edge/ocpp/v201/station_events.py (imported here, so callers say services.notify_event).
- P DataTransfer: 1.6's decision, the one function both call (edge/ocpp/data_transfer.py): the meter key
  announcement, else UnknownVendorId unless the vendor is configured ([ocpp] data_transfer_vendors), whose
  messages are journaled.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Coroutine
from weakref import WeakKeyDictionary

from edge.dlm.actuation import NOMINAL_VOLTAGE
from edge.dlm.needs import Declared, FromCar, from_car
from edge.journal import Store
from edge.ocpp import data_transfer as shared_data_transfer
from edge.ocpp import signed_values
from edge.ocpp.v201 import charging_limits, transactions
from edge.ocpp.v201.station_events import (  # noqa: F401  (N NotifyEvent lives there; callers import it here)
    KEEP_EVENTS, PROBLEM_EVENT, events_of, is_problem, notify_event)

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

# A car's needs given before its transaction started are held this long for it (ISO 15118 sends them
# before the power path closes, and TxStartPoint may be PowerPathClosed).
HOLD_S = 600.0
KEEP_REPORTS = 20            # ReportChargingProfiles requests kept per station (the newest)
KEEP_PROFILES = 100          # profiles kept per request
KEEP_SCHEDULES = 20          # NotifyEVChargingSchedule kept per station


@dataclass
class Kept:
    """What the 2.0.1 services keep per edge, bounded: for the operator and the tests, not the records (the reports
    and the cars' schedules as the journal keeps them, edge/journal/smart_charging.py)."""

    reports: dict[str, OrderedDict] = field(default_factory=dict)   # station -> request id -> Report
    schedules: dict[str, deque] = field(default_factory=dict)
    cars: dict[tuple[str, int], FromCar] = field(default_factory=dict)   # (station, evse) -> the car said
    holding: dict[tuple[str, int], int] = field(default_factory=dict)    # (station, evse) -> the newest hold
    renegotiate: set[tuple[str, int]] = field(default_factory=set)       # (station, evse): TxProfile after the answer


@dataclass
class Report:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False


_KEPT: "WeakKeyDictionary[Any, Kept]" = WeakKeyDictionary()


def kept(site: "Site") -> Kept:
    """This edge's (its journal's) kept messages."""
    found = _KEPT.get(site.journal)
    if found is None:
        found = _KEPT[site.journal] = Kept()
    return found


def running_on(site: "Site", charger_id: str, evse_id: int) -> int | None:
    """The site's transaction running on the station's EVSE (the site's connector), if any."""
    for transaction_id, (charger, connector, _) in site.sessions.running().items():
        if (charger, connector) == (charger_id, evse_id):
            return transaction_id
    return None


# -- J Meter values -----------------------------------------------------------------------------------

async def meter_values(site: "Site", charger_id: str, evse_id: int, meter_value: list[dict[str, Any]]) -> None:
    """2.0.1 MeterValues into the same store as 1.6's: signed values first (on disk before the answer),
    then the samples, of the transaction running on the EVSE if one runs."""
    transaction_id = running_on(site, charger_id, evse_id) if evse_id else None
    reading = transactions.read_meter_values(evse_id, meter_value, site.clock.now_iso())
    await signed_values.received(site, charger_id, evse_id, transaction_id, reading.as_v16)
    samples = [replace(s, transaction_id=transaction_id) for s in reading.samples]
    await site.sessions.meter_values(charger_id, evse_id, transaction_id, samples, reading.problems)


# -- K Smart charging: what the car says (ISO 15118) ---------------------------------------------------

def _answer(status: str, reason: str | None = None, info: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": status}
    if reason:
        answer["status_info"] = {"reason_code": reason[:20], **({"additional_info": info[:512]} if info else {})}
    return answer


async def ev_charging_needs(site: "Site", charger_id: str, evse_id: int, charging_needs: dict[str, Any], *,
                            spawn: Callable[[Coroutine], None], closed: asyncio.Event) -> dict[str, Any]:
    """NotifyEVChargingNeeds -> its answer (status, statusInfo). Accepted: the need is the running
    transaction's now, and once the answer is out the load manager sends the transaction's TxProfile again
    (after_ev_charging_needs: K15.FR.03, K16.FR.12, K17: the car's schedule is built from it); Processing: no
    transaction runs on the EVSE yet (or the load manager has not seen it start), the need is held for it up
    to HOLD_S and the TxProfile follows the start (K15.FR.05); Rejected: load management is off, the EVSE is
    on no managed circuit, or what the car said is wrong (a departure not after now, no energy). A car that
    names neither departure nor energy is planned as one that said nothing: Accepted, it gets the site's
    schedule all the same."""
    read = from_car(charging_needs, site.clock.now())
    for note in read.notes:
        log.warning("charging needs charger=%s evse=%s: %s", charger_id, evse_id, note)
    state = kept(site)
    state.cars[(charger_id, evse_id)] = read
    state.holding.pop((charger_id, evse_id), None)   # a newer need replaces one held
    manager = getattr(site, "load_manager", None)
    if manager is None:
        return _answer("Rejected", "NoSmartCharging", "load management is off at this site")
    if (charger_id, evse_id) not in manager.tracks:
        return _answer("Rejected", "UnknownEVSE", f"EVSE {evse_id} is on no managed circuit")
    # The car's own maximum plans it as known (scheduled), whatever else it said.
    manager.set_car_max((charger_id, evse_id), read.max_per_phase())
    if read.need is None and read.notes:
        return _answer("Rejected", "InvalidValue", "; ".join(read.notes))
    transaction_id = running_on(site, charger_id, evse_id)
    if read.need is None:
        if transaction_id is not None and manager.tracks[(charger_id, evse_id)].transaction_id == transaction_id:
            state.renegotiate.add((charger_id, evse_id))
            return _answer("Accepted")
        return _answer("Processing")
    if transaction_id is not None and _give(manager, transaction_id, read.need, charger_id, evse_id):
        state.renegotiate.add((charger_id, evse_id))
        return _answer("Accepted")
    hold = state.holding[(charger_id, evse_id)] = id(read)
    spawn(_give_when_started(site, manager, charger_id, evse_id, read.need, hold, closed))
    log.info("charging needs charger=%s evse=%s held until its transaction starts (at most %g s)",
             charger_id, evse_id, HOLD_S)
    return _answer("Processing")


def _give(manager: Any, transaction_id: int, need: Declared, charger_id: str, evse_id: int) -> bool:
    given = manager.set_needs(transaction_id, need.departure, need.energy_wh, need.source)
    if given:
        log.info("charging needs charger=%s evse=%s transaction=%s: departure=%s energy_wh=%s (source %s)",
                 charger_id, evse_id, transaction_id,
                 need.departure.isoformat(timespec="seconds") if need.departure else None,
                 None if need.energy_wh is None else round(need.energy_wh), need.source)
    return given


async def _give_when_started(site: "Site", manager: Any, charger_id: str, evse_id: int, need: Declared,
                             hold: int, closed: asyncio.Event) -> None:
    """The held need, given once the load manager tracks a transaction on the EVSE: tried at every event
    on the bus (the manager takes the start from the same bus) and every second, until HOLD_S, the
    station's connection closes, or a newer need replaces it."""
    state = kept(site)
    events = site.bus.subscribe(maxsize=100)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_S
    try:
        while state.holding.get((charger_id, evse_id)) == hold and not closed.is_set():
            transaction_id = running_on(site, charger_id, evse_id)
            if transaction_id is not None and _give(manager, transaction_id, need, charger_id, evse_id):
                state.holding.pop((charger_id, evse_id), None)
                return
            left = deadline - loop.time()
            if left <= 0:
                log.warning("charging needs charger=%s evse=%s: no transaction started within %g s; dropped",
                            charger_id, evse_id, HOLD_S)
                return
            try:
                await asyncio.wait_for(events.get(), min(1.0, left))
            except asyncio.TimeoutError:
                pass
    finally:
        site.bus.unsubscribe(events)


def after_ev_charging_needs(site: "Site", charger_id: str, evse_id: int) -> None:
    """Once an Accepted NotifyEVChargingNeedsResponse is on the wire: the CSMS sends its SetChargingProfile
    (K15, K17; K16.FR.12 even when it sent one just before)."""
    if (charger_id, evse_id) in kept(site).renegotiate:
        kept(site).renegotiate.discard((charger_id, evse_id))
        renegotiate(site, charger_id, evse_id, "the car's charging needs")


def renegotiate(site: "Site", charger_id: str, evse_id: int, why: str) -> bool:
    """Have the load manager send the running transaction's TxProfile now (a renegotiation, K16): its held
    profile is made due for renewal, so its next evaluation (woken now) sends the limit it holds, or the new
    one if the allocation changed. The load manager stays the only sender of TxProfiles. False: no
    transaction of the EVSE is tracked (its first TxProfile follows the start)."""
    manager = getattr(site, "load_manager", None)
    transaction_id = manager.renegotiate((charger_id, evse_id)) if manager is not None else None
    if transaction_id is None:
        return False
    log.info("renegotiation charger=%s evse=%s transaction=%s: the TxProfile is sent again (%s)", charger_id,
             evse_id, transaction_id, why)
    return True


def site_limit(site: "Site", charger_id: str, evse_id: int) -> tuple[float, int] | None:
    """The limit (A per phase, phases) of the TxProfile the station holds from the site for the EVSE's running
    transaction, or None when it holds none yet."""
    manager = getattr(site, "load_manager", None)
    track = manager.tracks.get((charger_id, evse_id)) if manager is not None else None
    held = track.held if track is not None else None
    if held is None or track is None or held.transaction_id != track.transaction_id:
        return None
    return held.limit, held.phases


# A car's period may sit this far above the site's limit (the profile's one decimal, a W rounding).
SCHEDULE_TOLERANCE_A = 0.1


def beyond_site_limit(schedule: dict[str, Any], limit_a: float, phases: int) -> str | None:
    """Why a car's schedule (NotifyEVChargingSchedule's, snake_case) exceeds the site's TxProfile of `limit_a`
    A per phase on `phases`, or None when every period is within it. A period in W is read at NOMINAL_VOLTAGE
    over its numberPhases (else `phases`)."""
    unit = schedule.get("charging_rate_unit")
    for i, period in enumerate(schedule.get("charging_schedule_period") or []):
        value = period.get("limit") if isinstance(period, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"period {i}: limit {value!r} is not a number"
        if unit == "W":
            n = max(1, period.get("number_phases") or phases or 3)
            amps, shown = value / (NOMINAL_VOLTAGE * n), f"{value:g} W on {n} phases"
        else:
            amps, shown = float(value), f"{value:g} A"
        if amps > limit_a + SCHEDULE_TOLERANCE_A:
            return f"period {i} (from {period.get('start_period')} s): {shown} above the site's {limit_a:g} A"
    return None


async def ev_charging_schedule(site: "Site", charger_id: str, evse_id: int, time_base: str,
                               charging_schedule: dict[str, Any]) -> dict[str, Any]:
    """NotifyEVChargingSchedule: the schedule the car chose; kept (in the journal before the answer), logged, and
    checked against the TxProfile
    the site holds the EVSE's transaction to (the station checked it too; the CSMS checks on its own,
    K15.FR.11, K16.FR.06, K17.FR.11): Accepted within it; Rejected above it, and the load manager sends its
    TxProfile again once the answer is out (K15.FR.12/13, K16.FR.07/08, K17.FR.12/13). Accepted when the
    site holds none yet (nothing of the site's to exceed)."""
    periods = charging_schedule.get("charging_schedule_period") or []
    state = kept(site)
    held = site_limit(site, charger_id, evse_id)
    why = beyond_site_limit(charging_schedule, *held) if held is not None else None
    entry = {"evse_id": evse_id, "time_base": time_base, "charging_schedule": charging_schedule,
             "status": "Rejected" if why else "Accepted", **({"why": why} if why else {})}
    await site.journal.write(Store.keep_car_schedule, charger_id, entry, site.clock.now_iso(), KEEP_SCHEDULES)
    _remember_car_schedule(state, charger_id, entry)
    log.log(logging.WARNING if why else logging.INFO,
            "car's charging schedule charger=%s evse=%s from=%s unit=%s periods=%d first=%s%s", charger_id, evse_id,
            time_base, charging_schedule.get("charging_rate_unit"), len(periods),
            periods[0].get("limit") if periods else None, f": Rejected, {why}" if why else "")
    if why:
        state.renegotiate.add((charger_id, evse_id))
        return _answer("Rejected", "ExceedsSiteLimit", why)
    return _answer("Accepted")


def _remember_car_schedule(state: Kept, charger_id: str, entry: dict[str, Any]) -> None:
    state.schedules.setdefault(charger_id, deque(maxlen=KEEP_SCHEDULES)).append(entry)


def after_ev_charging_schedule(site: "Site", charger_id: str, evse_id: int) -> None:
    """Once a Rejected NotifyEVChargingScheduleResponse is on the wire: a new renegotiation (K15.FR.13)."""
    if (charger_id, evse_id) in kept(site).renegotiate:
        kept(site).renegotiate.discard((charger_id, evse_id))
        renegotiate(site, charger_id, evse_id, "the car's schedule exceeded the site's limit")


async def report_charging_profiles(site: "Site", charger_id: str, request_id: int, evse_id: int, source: str,
                                   profiles: list[dict[str, Any]], tbc: bool, *,
                                   spawn: Callable[[Coroutine], None] | None = None,
                                   closed: asyncio.Event | None = None) -> None:
    """ReportChargingProfiles (the answer to GetChargingProfiles, in parts): kept per request (in the journal
    before the answer); its ChargingStationExternalConstraints profiles are the station's external limit
    (charging_limits.reported)."""
    if spawn is not None and closed is not None:
        await charging_limits.reported(site, charger_id, evse_id, source, profiles, spawn=spawn, closed=closed)
    before = reported_profiles(site, charger_id, request_id)
    so_far = (before.profiles if before is not None else []) + [
        {"evse_id": evse_id, "charging_limit_source": source, **profile} for profile in profiles]
    report = Report(so_far[:KEEP_PROFILES], not tbc)
    await site.journal.write(Store.keep_profile_report, charger_id, request_id, report.profiles, report.complete,
                             site.clock.now_iso(), KEEP_REPORTS)
    _remember_report(kept(site), charger_id, request_id, report)
    log.info("charging profiles charger=%s request=%s evse=%s source=%s profiles=%d%s", charger_id, request_id,
             evse_id, source, len(profiles), " (more to come)" if tbc else "")


def _remember_report(state: Kept, charger_id: str, request_id: int, report: Report) -> None:
    # As the journal keeps them (keep_profile_report): a request's newest part makes it the newest report.
    reports = state.reports.setdefault(charger_id, OrderedDict())
    reports.pop(request_id, None)
    reports[request_id] = report
    while len(reports) > KEEP_REPORTS:
        reports.popitem(last=False)


async def restore_smart_charging(site: "Site") -> None:
    """At the edge's start, before any station connects: the stations' external limits back with the load
    manager (charging_limits.restore), and their reported profiles and cars' schedules back for the operator."""
    await charging_limits.restore(site)
    state = kept(site)
    for row in await site.journal.read(Store.profile_reports):
        _remember_report(state, row["charger_id"], row["request_id"], Report(row["profiles"], row["complete"]))
    for entry in await site.journal.read(Store.car_schedules):
        _remember_car_schedule(state, entry.pop("charger_id"), entry)


def reported_profiles(site: "Site", charger_id: str, request_id: int) -> Report | None:
    return kept(site).reports.get(charger_id, {}).get(request_id)


def smart_charging_kept(site: "Site", charger_id: str) -> dict[str, Any]:
    """What the station reported of its profiles (ReportChargingProfiles, per request), the schedules its cars
    chose (NotifyEVChargingSchedule, with the site's answer) and its external limits (NotifyChargingLimit,
    with what the site counts on now per EVSE), newest first, as kept (bounded; in the journal too, read back at
    the edge's start): for the local API."""
    state = kept(site)
    reports = [{"request_id": request_id, "complete": report.complete, "profiles": list(report.profiles)}
               for request_id, report in reversed(state.reports.get(charger_id, {}).items())]
    return {"reports": reports, "car_schedules": list(reversed(state.schedules.get(charger_id, ()))),
            "external_limits": charging_limits.kept(site, charger_id),
            "kept_at_most": {"reports": KEEP_REPORTS, "profiles_per_report": KEEP_PROFILES,
                             "car_schedules": KEEP_SCHEDULES}}


# -- L Firmware, N Diagnostics ------------------------------------------------------------------------

async def firmware_status(site: "Site", charger_id: str, status: str, request_id: int | None) -> None:
    """FirmwareStatusNotification: kept with the UpdateFirmware request, as 1.6's signed firmware status."""
    if site.security is not None:
        await site.security.firmware.status(charger_id, request_id, status)
    else:
        await site.journal.write(Store.record_firmware_status, charger_id, "firmware", status, site.clock.now_iso())


async def log_status(site: "Site", charger_id: str, status: str, request_id: int | None) -> None:
    """LogStatusNotification: kept with the GetLog request, as 1.6's."""
    if site.security is not None:
        await site.security.logs.status(charger_id, request_id, status)
    else:
        await site.journal.write(Store.record_firmware_status, charger_id, "diagnostics", status,
                                 site.clock.now_iso())


# -- P DataTransfer -----------------------------------------------------------------------------------

# The same decision as 1.6's (edge/ocpp/data_transfer.py, which the 1.6 session's handler calls too).
data_transfer = shared_data_transfer.decide

