"""OCPP 2.0.1 external charging limits across an edge restart (K11-K13 with the journal, migration 22): a limit a
system beside the edge holds a station to is on disk before its NotifyChargingLimit is answered; after the edge
restarts over the same state directory, the load manager counts on no more for that EVSE before the station
reconnects, and GET /smart-charging shows the limit as before; a ClearedChargingLimit stays cleared; a limit whose
schedules are all over is dropped at the restore. The real edge and the simulated 2.0.1 station over real
WebSockets; hypothesis over the stored form."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from ocpp.exceptions import InternalError

from edge.clock import Clock
from edge.journal import Journal, Store
from edge.journal.store import connect
from edge.ocpp.v201 import services as v201_services
from edge.ocpp.v201.charging_limits import KEEP_PER_STATION, Refused, check_schedules
from edge.ocpp.v201.services import KEEP_REPORTS, KEEP_SCHEDULES
from edge.stations.model import ChargingLimit, LimitPurpose
from simulator.v201 import services as car
from tests.edge.conftest import api_call, eventually, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.v201.test_load_management import LM, SITE, start
from tests.edge.v201.test_oca_k_external_limits import EVSE1, EVSE2, clear, managed_site, notify, schedule


def limits_shown(smart: dict) -> list[tuple]:
    return [(k["evse_id"], k["charging_limit_source"], k["is_grid_critical"], k["via"], k["in_force_a"])
            for k in smart["external_limits"]]


async def test_an_external_limit_holds_after_a_restart_before_and_after_the_station_reconnects(make_edge):
    """EMS holds EVSE 1 to 10 A, SO the whole station to 6900 W (grid critical). The edge stops right after the
    answers and starts again over the same state: before the station is back, the load manager already holds
    EVSE 1 to 10 A and EVSE 2 to 10 A (6900 W at 230 V on three phases) and the API shows both limits as before;
    once the station is back and two cars charge, the site gives them no more."""
    async with managed_site(make_edge) as (edge, sim):
        await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        await notify(sim, "SO", schedules=[schedule(6900, unit="W")], critical=True)
        before = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
        assert edge.load_manager.external_limits == {EVSE1: 10.0, EVSE2: 10.0}

    async with make_edge(extra=LM, chargers=SITE) as edge:
        assert edge.load_manager.external_limits == {EVSE1: 10.0, EVSE2: 10.0}
        after = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
        assert after["external_limits"] == before["external_limits"]
        assert limits_shown(after) == [(0, "SO", True, "NotifyChargingLimit", {"0": 10.0, "1": 10.0, "2": 10.0}),
                                       (1, "EMS", None, "NotifyChargingLimit", {"1": 10.0})]
        # The station back: SO's limit cleared by its source, EMS's holds: EVSE 2 gets the rest of the circuit.
        async with station(edge, evses=2) as sim:
            await sim.wait_online()
            await clear(sim, "SO")
            await start(sim, 1, "TAG-OK")
            await start(sim, 2, "TAG-2")
            await wait_for(lambda: sim.offered_current(1) == 10.0 and sim.offered_current(2) == 30.0, timeout=10,
                           what="EVSE 1 at its restored external limit, EVSE 2 given the rest of the 40 A")


async def test_a_cleared_limit_stays_cleared_after_a_restart(make_edge):
    """ClearedChargingLimit removes the limit from the journal before it is answered: after a restart only the
    limit not cleared is back."""
    async with managed_site(make_edge) as (edge, sim):
        await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        await notify(sim, "SO", evse=2, schedules=[schedule(16)])
        await clear(sim, "EMS")
        assert edge.load_manager.external_limits == {EVSE2: 16.0}

    async with make_edge(extra=LM, chargers=SITE) as edge:
        assert edge.load_manager.external_limits == {EVSE2: 16.0}
        smart = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
        assert limits_shown(smart) == [(2, "SO", None, "NotifyChargingLimit", {"2": 16.0})]


async def test_a_limit_whose_schedules_are_over_is_dropped_at_the_restore(make_edge):
    """The edge restarts two hours later (its clock): EMS's schedule on EVSE 1 ended an hour ago: dropped (from the
    journal too); SO's on EVSE 2 without an end holds; Other's on EVSE 1 that begins in three hours is kept (not in
    force yet); a limit notified without its schedule is kept as notified."""
    now = datetime.now(timezone.utc)
    async with managed_site(make_edge) as (edge, sim):
        await notify(sim, "EMS", evse=1, schedules=[schedule(8, start=now - timedelta(minutes=10), duration=3600)])
        await notify(sim, "SO", evse=2, schedules=[schedule(16, start=now - timedelta(minutes=10))])
        await notify(sim, "Other", evse=1, schedules=[schedule(6, start=now + timedelta(hours=3))])
        await notify(sim, "EMS", evse=2)
        assert edge.load_manager.external_limits == {EVSE1: 8.0, EVSE2: 16.0}

    later = Clock(wall=lambda: datetime.now(timezone.utc) + timedelta(hours=2))
    async with make_edge(clock=later, extra=LM, chargers=SITE) as edge:
        assert edge.load_manager.external_limits == {EVSE2: 16.0}
        smart = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
        assert [(k["evse_id"], k["charging_limit_source"]) for k in smart["external_limits"]] == \
            [(2, "EMS"), (1, "Other"), (2, "SO")]
        kept = await eventually(lambda: edge.journal.read(Store.external_limits), what="the kept limits")
        assert sorted((k["evse_id"], k["source"]) for k in kept) == [(1, "Other"), (2, "EMS"), (2, "SO")]


async def test_a_limit_that_cannot_be_kept_is_not_acknowledged_nor_applied(make_edge, monkeypatch):
    """Nothing acknowledged before it is on disk: when the journal cannot keep the limit the station gets a
    CALLERROR (it will notify again), and the site applies nothing it could forget at a restart."""
    async with managed_site(make_edge) as (edge, sim):
        def failing(*args, **kwargs):
            raise sqlite3.OperationalError("disk I/O error")
        monkeypatch.setattr(Store, "keep_external_limit", failing, raising=False)
        with pytest.raises(InternalError):
            await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        assert edge.load_manager.external_limits == {}
        assert (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["external_limits"] == []


# -- the stored form ------------------------------------------------------------------------------------------------

finite = st.one_of(st.floats(0, 5000, allow_nan=False), st.integers(0, 5000))
periods = st.lists(st.fixed_dictionaries({"start_period": st.integers(0, 10 ** 6), "limit": finite},
                                         optional={"number_phases": st.sampled_from([1, 2, 3])}), min_size=1, max_size=5)
schedules = st.lists(st.fixed_dictionaries(
    {"id": st.integers(0, 2 ** 31 - 1), "charging_rate_unit": st.just("A"), "charging_schedule_period": periods,
     "start_schedule": st.sampled_from(["2026-12-07T10:00:00Z", "2026-12-07T10:00:00.123+01:00"])},
    optional={"duration": st.integers(0, 10 ** 7), "min_charging_rate": finite}), max_size=3)
limits = st.fixed_dictionaries({
    "evse_id": st.integers(0, 2 ** 31 - 1), "source": st.sampled_from(["EMS", "SO", "Other"]),
    "grid_critical": st.sampled_from([None, True, False]), "schedules": schedules,
    "received_at": st.just("2026-12-07T10:00:00Z"), "via": st.sampled_from(["NotifyChargingLimit",
                                                                           "ReportChargingProfiles"])})


@settings(max_examples=200, deadline=None)
@given(st.lists(limits, min_size=1, max_size=KEEP_PER_STATION + 5))
def test_the_kept_limits_read_back_as_kept_the_newest_per_evse_and_source(kept):
    """Whatever limits a station had kept (checked schedules: any numbers a limit may be, floats and integers,
    optional fields or not), the journal reads them back exactly, one per (evseId, source), the newest of each,
    in the order last received, at most KEEP_PER_STATION."""
    for limit in kept:
        try:
            check_schedules(limit["schedules"])
        except Refused:
            return
    store = Store(connect(":memory:"))
    store.conn.execute("BEGIN")
    for limit in kept:
        store.keep_external_limit(STATION, limit, KEEP_PER_STATION)
    store.conn.execute("COMMIT")
    newest: dict[tuple, dict] = {}
    for limit in kept:
        newest.pop((limit["evse_id"], limit["source"]), None)
        newest[(limit["evse_id"], limit["source"])] = {"charger_id": STATION, **limit}
    expected = list(newest.values())[-KEEP_PER_STATION:]
    got = store.external_limits()
    assert got == expected
    # Integers stay integers and floats floats (the API shows them as the station sent them).
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    store.conn.close()


async def test_a_restored_schedule_is_followed_once_the_station_reconnects(make_edge):
    """EMS holds EVSE 2 to 16 A for a minute, then 8 A: the edge restarts within the first minute; once the station
    is back, the next period's 8 A is applied when it starts, as before the restart."""
    async with managed_site(make_edge) as (edge, sim):
        began = datetime.now(timezone.utc) - timedelta(seconds=54)
        await notify(sim, "EMS", evse=2, schedules=[schedule(16, 8, start=began, step=60, duration=3600)])
        assert edge.load_manager.external_limits == {EVSE2: 16.0}

    async with make_edge(extra=LM, chargers=SITE) as edge, station(edge, evses=2) as sim:
        await sim.wait_online()
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE2: 8.0}, timeout=15,
                       what="the second period's limit once it starts, after the restart")


# -- what the stations reported of their smart charging, for the operator ------------------------------------------

async def test_reported_profiles_and_cars_schedules_read_the_same_after_a_restart(make_edge):
    """GET /smart-charging's reports (ReportChargingProfiles per request) and car schedules (NotifyEVChargingSchedule
    with the site's answer) read the same after the edge restarts, with no station connected."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        control = edge.control.adapter(STATION)
        limit = ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0, evse=1, phases=3)
        assert (await control.set_charging_limit(STATION, limit, actor="t", reason="r")).outcome == "ok"
        for request_id in (501, 502):
            assert (await control.charging_profiles(STATION, request_id, actor="operator", reason="r")).outcome == "ok"
        await car.ev_charging_schedule(sim, 1, [16.0, 8.0])
        await car.ev_charging_schedule(sim, 2, [6.0])

        async def both_reported() -> dict | None:
            body = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
            return body if [r["complete"] for r in body["reports"]] == [True, True] else None
        before = await eventually(both_reported, "both reports")
    assert [r["request_id"] for r in before["reports"]] == [502, 501] and len(before["car_schedules"]) == 2

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        after = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
    assert after == before


class _Site:
    """What the services read of the site for a report or a car's schedule: the journal and the clock."""

    def __init__(self, journal: Journal):
        self.journal, self.clock, self.load_manager = journal, Clock(), None


parts = st.lists(st.tuples(st.integers(1, KEEP_REPORTS + 3), st.integers(0, 40), st.booleans()), max_size=40)
cars = st.lists(st.tuples(st.integers(1, 3), st.lists(st.floats(0, 100), min_size=1, max_size=3)),
                max_size=KEEP_SCHEDULES + 5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts, cars)
def test_reports_and_cars_schedules_restore_as_they_were_kept(parts, cars):
    """Any run of report parts (request ids, profile counts, more to come or not: past KEEP_REPORTS requests and
    KEEP_PROFILES per request) and of cars' schedules (past KEEP_SCHEDULES): an edge started over the same journal
    holds exactly what the edge before it held, in the same order."""
    async def run(path: str) -> None:
        async with Journal(path) as journal:
            committing = asyncio.create_task(journal.run())
            site = _Site(journal)
            for request_id, count, tbc in parts:
                profiles = [{"id": i, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                             "charging_profile_kind": "Absolute", "charging_schedule": []} for i in range(count * 3)]
                await v201_services.report_charging_profiles(site, STATION, request_id, 1, "CSO", profiles, tbc)
            for evse, limits in cars:
                await v201_services.ev_charging_schedule(site, STATION, evse, "2026-12-07T10:00:00Z", {
                    "id": 1, "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": i * 60, "limit": x} for i, x in enumerate(limits)]})
            committing.cancel()
            before = v201_services.smart_charging_kept(site, STATION)
        async with Journal(path) as journal:
            site = _Site(journal)
            await v201_services.restore_smart_charging(site)
            assert v201_services.smart_charging_kept(site, STATION) == before

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(f"{directory}/journal.db"))
