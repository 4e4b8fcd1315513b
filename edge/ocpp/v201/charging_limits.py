"""OCPP 2.0.1 external charging limits at the edge (K11/K12 NotifyChargingLimit, K13 ClearedChargingLimit,
and a reported ChargingStationExternalConstraints profile, K09/TC_K_52).

A system beside the edge (an energy manager, the grid operator) can limit a station itself; the station then
applies the lower of that limit and the site's profile. So the site must not count on more for that EVSE:
the limit in force now, in A per phase, goes to the load manager (LoadManager.set_external_limit, the
allocator's ConnectorState.ceiling), which gives that EVSE no more and the rest to other cars.

- Kept per station and per (evseId, source): several sources may limit one EVSE; the station obeys the
  lowest, and so does the site. evseId 0 (or none) limits the whole station: every EVSE of it gets that
  limit as its ceiling (conservative: the site never gives one EVSE more than the whole station may take).
- The limit in force now: the period of each schedule that covers now (startSchedule, or the moment the
  edge received it when the station gives none; its duration); several schedules: the lowest. In W it is
  turned into A per phase at NOMINAL_VOLTAGE (230 V) over the period's numberPhases, else the EVSE's
  phases. The edge re-applies it when the next period starts (a timer per station, while it is connected).
- A NotifyChargingLimit without a schedule (allowed: EnableNotifyChargingLimitWithSchedules false) says a
  limit exists but not how much: it is kept, and after the answer the edge asks the station for it
  (GetChargingProfiles, chargingLimitSource that source); the ReportChargingProfiles' external-constraints
  profiles then give the value.
- ClearedChargingLimit removes that source's limit of the EVSE named, or of the whole station when none
  (or 0) is named.
- chargingLimitSource CSO is the site's own (its profiles): a station SHALL NOT notify one (K11.FR.05,
  K12.FR.04): refused by a CALLERROR, nothing applied. A limit that is not a number, negative, beyond any
  station (MAX_A, MAX_W), a period before its schedule starts or with a phase count other than 1-3 is
  refused likewise, naming the field: what was applied before stays, and the load manager runs on.
- Kept in the journal (edge/journal/charging_limits.py) before the message is answered: a limit kept, a
  ClearedChargingLimit's removal, a reported profile's limit. The limits in memory here are the journal's, read
  back at the edge's start (`restore`, before any station can connect) and handed to the load manager then, so a
  restart does not give those EVSEs their full share until the station notifies again. A limit whose schedules
  are all over (each one's duration past) limits nothing ever again: dropped at the restore, from the journal too;
  one not begun yet, and one notified without its schedule (its size unknown), are restored as kept.
  Readable in GET /api/v1/chargers/{id}/smart-charging ("external_limits").
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Coroutine
from weakref import WeakKeyDictionary

from edge.clock import parse_iso
from edge.dlm.actuation import NOMINAL_VOLTAGE
from edge.journal import Store

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

SOURCES = ("EMS", "Other", "SO", "CSO")
OURS = "CSO"
EXTERNAL_PURPOSE = "ChargingStationExternalConstraints"
MAX_A = 5000.0          # A per phase: beyond any station (a megawatt DC charger draws some 3000 A)
MAX_W = 10_000_000.0    # W: beyond any station
MAX_SCHEDULES = 10      # schedules read from one message
KEEP_PER_STATION = 64   # (evseId, source) limits kept per station
ASK_WAIT_S = 30.0       # how long the station may take to answer the GetChargingProfiles asked for a limit

_request_ids = itertools.count(max(1, int(time.time()) - 1_704_067_200) * 10 + 7)


class Refused(ValueError):
    """A limit that cannot be a limit: the message is answered with a CALLERROR naming why."""


@dataclass
class Limit:
    """One source's limit on one EVSE (0: the whole station), as the station told it."""

    evse_id: int
    source: str
    grid_critical: bool | None
    schedules: list[dict[str, Any]]   # as received (snake_case), each with its start when it had none
    received_at: str
    via: str                          # NotifyChargingLimit | ReportChargingProfiles
    in_force: dict[int, float | None] = field(default_factory=dict)   # EVSE -> A per phase applied now


@dataclass
class State:
    limits: dict[str, dict[tuple[int, str], Limit]] = field(default_factory=dict)   # station -> its limits
    generation: dict[str, int] = field(default_factory=dict)                        # station -> its timer's turn
    ask: set[tuple[str, int, str]] = field(default_factory=set)   # (station, evse, source) to ask after the answer


_STATE: "WeakKeyDictionary[Any, State]" = WeakKeyDictionary()


def state(site: "Site") -> State:
    found = _STATE.get(site.journal)
    if found is None:
        found = _STATE[site.journal] = State()
    return found


# -- reading what the station sent (pure) -----------------------------------------------------------------

def _field(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{where} {value!r}: not a number")
    if not math.isfinite(value):
        raise Refused(f"{where} {value!r}: not a finite number")
    return float(value)


def check_schedules(schedules: Any, where: str = "chargingSchedule") -> list[dict[str, Any]]:
    """The schedules of a NotifyChargingLimit (or a reported profile), checked: raises Refused naming the
    first field that cannot be a limit. Returns them as given."""
    if schedules is None:
        return []
    if not isinstance(schedules, list):
        raise Refused(f"{where}: not a list")
    if len(schedules) > MAX_SCHEDULES:
        raise Refused(f"{where}: {len(schedules)} schedules, at most {MAX_SCHEDULES} are read")
    for i, schedule in enumerate(schedules):
        at = f"{where}[{i}]"
        if not isinstance(schedule, dict):
            raise Refused(f"{at}: not an object")
        unit = schedule.get("charging_rate_unit")
        if unit not in ("A", "W"):
            raise Refused(f"{at}.chargingRateUnit {unit!r}: A or W")
        start = schedule.get("start_schedule")
        if start is not None and parse_iso(str(start)) is None:
            raise Refused(f"{at}.startSchedule {str(start)[:40]!r}: not a date-time")
        duration = schedule.get("duration")
        if duration is not None and (_field(duration, f"{at}.duration") < 0):
            raise Refused(f"{at}.duration {duration}: negative")
        periods = schedule.get("charging_schedule_period")
        if not isinstance(periods, list) or not periods:
            raise Refused(f"{at}.chargingSchedulePeriod: missing or empty")
        ceiling = MAX_A if unit == "A" else MAX_W
        for j, period in enumerate(periods):
            pat = f"{at}.chargingSchedulePeriod[{j}]"
            if not isinstance(period, dict):
                raise Refused(f"{pat}: not an object")
            if _field(period.get("start_period"), f"{pat}.startPeriod") < 0:
                raise Refused(f"{pat}.startPeriod {period.get('start_period')}: before the schedule's start")
            limit = _field(period.get("limit"), f"{pat}.limit")
            if limit < 0:
                raise Refused(f"{pat}.limit {limit:g} {unit}: negative")
            if limit > ceiling:
                raise Refused(f"{pat}.limit {limit:g} {unit}: beyond any station (at most {ceiling:g} {unit})")
            phases = period.get("number_phases")
            if phases is not None and (isinstance(phases, bool) or phases not in (1, 2, 3)):
                raise Refused(f"{pat}.numberPhases {phases!r}: 1, 2 or 3")
    return schedules


@dataclass(frozen=True)
class InForce:
    limit: float | None         # in the schedule's unit; None: nothing in force now
    unit: str
    phases: int | None          # the period's numberPhases
    next_change: datetime | None


def in_force(schedule: dict[str, Any], now: datetime, received: datetime) -> InForce:
    """The period of a (checked) schedule in force at `now`, and when that changes next. A schedule without
    startSchedule starts when it was received."""
    unit = schedule["charging_rate_unit"]
    start = parse_iso(str(schedule["start_schedule"])) if schedule.get("start_schedule") else received
    assert start is not None
    periods = sorted(schedule["charging_schedule_period"], key=lambda p: p["start_period"])
    duration = schedule.get("duration")
    end = start + timedelta(seconds=duration) if duration is not None else None
    if end is not None and now >= end:
        return InForce(None, unit, None, None)
    elapsed = (now - start).total_seconds()
    current = None
    next_change = end
    for period in periods:
        if period["start_period"] <= elapsed:
            current = period
        else:
            at = start + timedelta(seconds=period["start_period"])
            next_change = at if end is None or at < end else end
            break
    if current is None:
        return InForce(None, unit, None, next_change)
    return InForce(float(current["limit"]), unit, current.get("number_phases"), next_change)


def per_phase(value: float, unit: str, phases: int | None, evse_phases: int) -> float:
    """A limit as A per phase: A as it is; W over NOMINAL_VOLTAGE and the period's phases, else the EVSE's."""
    if unit == "A":
        return value
    return value / (NOMINAL_VOLTAGE * (phases or evse_phases or 3))


# -- what the station sends ---------------------------------------------------------------------------------

async def notify(site: "Site", charger_id: str, evse_id: int | None, charging_limit: dict[str, Any],
                 schedules: list[dict[str, Any]] | None, *, spawn: Callable[[Coroutine], None],
                 closed: asyncio.Event) -> None:
    """NotifyChargingLimit: kept (on disk when this returns) and applied (raises Refused for a limit that cannot
    be one: nothing changes)."""
    source = charging_limit.get("charging_limit_source")
    if source == OURS:
        raise Refused("chargingLimit.chargingLimitSource CSO: a station notifies only limits set beside the CSMS "
                      "(K11.FR.05, K12.FR.04); the CSMS's own are its charging profiles")
    if source not in SOURCES:
        raise Refused(f"chargingLimit.chargingLimitSource {source!r}: one of {', '.join(SOURCES)}")
    evse = _evse(evse_id)
    checked = check_schedules(schedules)
    critical = charging_limit.get("is_grid_critical")
    await _keep(site, charger_id, Limit(evse, source, critical if isinstance(critical, bool) else None,
                                        [_started(s, site) for s in checked], site.clock.now_iso(),
                                        "NotifyChargingLimit"))
    log.log(logging.WARNING if critical else logging.INFO,
            "external limit charger=%s evse=%s source=%s grid_critical=%s schedules=%d", charger_id, evse or "all",
            source, critical, len(checked))
    if not checked:
        state(site).ask.add((charger_id, evse, source))
    follow(site, charger_id, spawn=spawn, closed=closed)


async def cleared(site: "Site", charger_id: str, source: str, evse_id: int | None, *,
                  spawn: Callable[[Coroutine], None], closed: asyncio.Event) -> int:
    """ClearedChargingLimit: that source's limit of the EVSE, or of every EVSE of the station when none (or 0)
    is named, is gone (from the journal when this returns); -> how many were removed."""
    evse = _evse(evse_id)
    limits = state(site).limits.get(charger_id, {})
    gone = [k for k in limits if k[1] == source and (evse == 0 or k[0] == evse)]
    if gone:
        await site.journal.write(Store.clear_external_limits, charger_id, gone)
    for key in gone:
        del limits[key]
    log.info("external limit cleared charger=%s evse=%s source=%s: %d removed", charger_id, evse or "all", source,
             len(gone))
    follow(site, charger_id, spawn=spawn, closed=closed)
    return len(gone)


async def reported(site: "Site", charger_id: str, evse_id: int, source: str, profiles: list[dict[str, Any]], *,
                   spawn: Callable[[Coroutine], None], closed: asyncio.Event) -> None:
    """ReportChargingProfiles: its ChargingStationExternalConstraints profiles are that source's limit on the
    EVSE, kept (on disk when this returns; a bad one is logged and left out: the report itself is the station's
    answer to us)."""
    external = [p for p in profiles if isinstance(p, dict) and p.get("charging_profile_purpose") == EXTERNAL_PURPOSE]
    if not external or source == OURS:
        return
    schedules: list[dict[str, Any]] = []
    for profile in external:
        try:
            got = check_schedules(profile.get("charging_schedule"), f"chargingProfile {profile.get('id')}")
        except Refused as refused:
            log.warning("external limit charger=%s evse=%s: reported profile left out: %s", charger_id, evse_id,
                        refused)
            continue
        if profile.get("charging_profile_kind") == "Recurring":
            # Its periods repeat from a start the report does not pin to now: the lowest of them holds.
            got = [{**s, "start_schedule": None, "duration": None,
                    "charging_schedule_period": [min(s["charging_schedule_period"], key=lambda p: p["limit"])
                                                 | {"start_period": 0}]} for s in got]
        schedules += [_started(s, site) for s in got]
    if not schedules:
        return
    evse = _evse(evse_id)
    old = state(site).limits.get(charger_id, {}).get((evse, source))
    await _keep(site, charger_id, Limit(evse, source, old.grid_critical if old else None, schedules[:MAX_SCHEDULES],
                                        site.clock.now_iso(), "ReportChargingProfiles"))
    log.info("external limit charger=%s evse=%s source=%s from its reported profiles (%d schedules)", charger_id,
             evse or "all", source, len(schedules))
    follow(site, charger_id, spawn=spawn, closed=closed)


def _evse(evse_id: Any) -> int:
    if evse_id is None:
        return 0
    if isinstance(evse_id, bool) or not isinstance(evse_id, int) or evse_id < 0:
        raise Refused(f"evseId {evse_id!r}: 0 (the whole station) or an EVSE's id")
    return evse_id


def _started(schedule: dict[str, Any], site: "Site") -> dict[str, Any]:
    """A schedule without its start starts now (when the edge received it): kept so, to be followed."""
    if schedule.get("start_schedule"):
        return dict(schedule)
    return {**schedule, "start_schedule": site.clock.now_iso()}


async def _keep(site: "Site", charger_id: str, limit: Limit) -> None:
    """The limit on disk, then in memory (where it is applied): what the site applies it can restore."""
    await site.journal.write(Store.keep_external_limit, charger_id, _stored(limit), KEEP_PER_STATION)
    _remember(site, charger_id, limit)


def _remember(site: "Site", charger_id: str, limit: Limit) -> None:
    # As the journal keeps them (keep_external_limit): a replaced limit becomes the newest; the oldest go.
    limits = state(site).limits.setdefault(charger_id, {})
    limits.pop((limit.evse_id, limit.source), None)
    limits[(limit.evse_id, limit.source)] = limit
    while len(limits) > KEEP_PER_STATION:
        del limits[next(iter(limits))]


def _stored(limit: Limit) -> dict[str, Any]:
    return {"evse_id": limit.evse_id, "source": limit.source, "grid_critical": limit.grid_critical,
            "schedules": limit.schedules, "received_at": limit.received_at, "via": limit.via}


def over(limit: Limit, now: datetime) -> bool:
    """Whether a limit will limit nothing ever again: it has schedules and each has ended (its duration past).
    A limit without a schedule (its size not told) is not over: it lasts until its source clears it."""
    received = parse_iso(limit.received_at) or now
    ahead = [in_force(s, now, received) for s in limit.schedules]
    return bool(ahead) and all(a.limit is None and a.next_change is None for a in ahead)


async def restore(site: "Site") -> None:
    """At the edge's start, before any station connects: every station's kept limits back in memory and with
    the load manager; a limit that is over is dropped, from the journal too. The timers that follow a schedule's
    periods start when the station connects (`connected`)."""
    now = site.clock.now()
    dropped: dict[str, list[tuple[int, str]]] = {}
    for row in await site.journal.read(Store.external_limits):
        limit = Limit(row["evse_id"], row["source"], row["grid_critical"], row["schedules"], row["received_at"],
                      row["via"])
        if over(limit, now):
            dropped.setdefault(row["charger_id"], []).append((limit.evse_id, limit.source))
            continue
        _remember(site, row["charger_id"], limit)
    for charger_id, keys in dropped.items():
        await site.journal.write(Store.clear_external_limits, charger_id, keys)
        log.info("external limit charger=%s: %d whose schedules are over dropped at the start", charger_id, len(keys))
    for charger_id in state(site).limits:
        apply(site, charger_id)
        log.info("external limit charger=%s: %d restored from the journal", charger_id,
                 len(state(site).limits[charger_id]))


def connected(site: "Site", charger_id: str, *, spawn: Callable[[Coroutine], None], closed: asyncio.Event) -> None:
    """The station is (again) connected: its limits applied now and followed while it stays (a restored limit's
    next period, a schedule's end)."""
    if state(site).limits.get(charger_id):
        follow(site, charger_id, spawn=spawn, closed=closed)


# -- to the load manager --------------------------------------------------------------------------------------

def apply(site: "Site", charger_id: str) -> datetime | None:
    """Each EVSE of the station gets the lowest limit in force now of those covering it (its own and the
    station's) as its ceiling in the load manager; -> when one of them changes next."""
    now = site.clock.now()
    limits = list(state(site).limits.get(charger_id, {}).values())
    manager = getattr(site, "load_manager", None)
    keys = sorted(k for k in (manager.tracks if manager is not None else ()) if k[0] == charger_id)
    evses = {k[1] for k in keys} | {lim.evse_id for lim in limits if lim.evse_id}
    next_change: datetime | None = None
    lowest: dict[int, float] = {}
    for limit in limits:
        limit.in_force = {}
        received = parse_iso(limit.received_at) or now
        # (the whole station's is shown under 0 too, for the operator; the load manager keys by EVSE)
        covered = [0, *sorted(evses)] if limit.evse_id == 0 else [limit.evse_id]
        for schedule in limit.schedules:
            now_in = in_force(schedule, now, received)
            if now_in.next_change is not None and (next_change is None or now_in.next_change < next_change):
                next_change = now_in.next_change
            if now_in.limit is None:
                continue
            for evse in covered:
                amps = per_phase(now_in.limit, now_in.unit, now_in.phases, _phases(manager, (charger_id, evse)))
                mine = limit.in_force.get(evse)
                limit.in_force[evse] = amps if mine is None else min(mine, amps)
        for evse, amps in limit.in_force.items():
            if amps is not None and (evse not in lowest or amps < lowest[evse]):
                lowest[evse] = amps
    if manager is not None:
        for key in keys:
            ceiling = lowest.get(key[1])
            # Down to a tenth of an amp (a profile's precision): never a hair more than the station allows.
            ceiling = None if ceiling is None else math.floor(ceiling * 10 + 1e-9) / 10
            if manager.external_limits.get(key) != ceiling:
                manager.set_external_limit(key, ceiling)
                log.info("external limit charger=%s evse=%s: the site counts on %s", key[0], key[1],
                         "no limit of its own" if ceiling is None else f"at most {ceiling:g} A per phase")
    return next_change


def _phases(manager: Any, key: tuple[str, int]) -> int:
    evse = manager.topology.evse_by_key.get(key) if manager is not None else None
    return len(evse.phase_map) if evse is not None and evse.phase_map else 3


def follow(site: "Site", charger_id: str, *, spawn: Callable[[Coroutine], None], closed: asyncio.Event) -> None:
    """Apply now, and again whenever a period starts or a schedule ends, while the station is connected (a
    newer message replaces the timer)."""
    turns = state(site).generation
    turn = turns[charger_id] = turns.get(charger_id, 0) + 1
    next_change = apply(site, charger_id)
    if next_change is not None:
        spawn(_follow(site, charger_id, turn, next_change, closed))


async def _follow(site: "Site", charger_id: str, turn: int, next_change: datetime | None,
                  closed: asyncio.Event) -> None:
    turns = state(site).generation
    while next_change is not None and turns.get(charger_id) == turn and not closed.is_set():
        wait = max(0.2, (next_change - site.clock.now()).total_seconds())
        try:
            await asyncio.wait_for(closed.wait(), wait)
            return
        except asyncio.TimeoutError:
            pass
        if turns.get(charger_id) != turn:
            return
        try:
            next_change = apply(site, charger_id)
        except Exception:   # never the end of the site's load management: logged, tried at the next change
            log.exception("external limit charger=%s: applying failed", charger_id)
            return


async def ask_for_limits(site: "Site", charger_id: str) -> None:
    """After a NotifyChargingLimit without a schedule: GetChargingProfiles for that source's profiles (the
    station reports them as ChargingStationExternalConstraints, `reported`)."""
    asks = sorted(a for a in state(site).ask if a[0] == charger_id)
    state(site).ask.difference_update(asks)
    control = getattr(site, "control", None)
    adapter = getattr(control, "adapter", None)
    if not asks or adapter is None:
        return
    for _, evse, source in asks:
        request_id = next(_request_ids)
        try:
            result = await adapter(charger_id).charging_profiles(
                charger_id, request_id, evse=evse or None, sources=[source], actor="edge",
                reason=f"the {source} limit the station notified without its schedule (K12, TC_K_52)")
        except Exception as error:   # the station's answer is its own; the limit stays as notified
            log.warning("external limit charger=%s: asking for its %s profiles failed: %s", charger_id, source, error)
            continue
        log.info("external limit charger=%s evse=%s source=%s: GetChargingProfiles %s %s", charger_id, evse or "all",
                 source, result.outcome, result.response)


# -- for the operator -----------------------------------------------------------------------------------------

def kept(site: "Site", charger_id: str) -> list[dict[str, Any]]:
    """The station's external limits as it told them, with what the site counts on now per EVSE (A per phase)."""
    return [{"evse_id": limit.evse_id, "charging_limit_source": limit.source, "is_grid_critical": limit.grid_critical,
             "via": limit.via, "received_at": limit.received_at, "charging_schedule": limit.schedules,
             "in_force_a": {str(evse): amps for evse, amps in sorted(limit.in_force.items())}}
            for limit in reversed(list(state(site).limits.get(charger_id, {}).values()))]


