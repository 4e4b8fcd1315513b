"""OCPP 2.0.1 K15 at the edge: an ISO 15118 car's charging needs (NotifyEVChargingNeeds: departure time,
energy amount, its current limits) become the running transaction's declared need, source "iso15118",
which the load manager's `scheduled` strategy plans with (edge/dlm/needs.py, edge/ocpp/v201/services.py).
The simulated 2.0.1 station over real WebSockets; at the frame boundary, hypothesis over a raw client."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.config import parse_config
from edge.dlm.needs import ISO15118, MAX_AHEAD, MAX_ENERGY_KWH, from_car
from simulator.v201 import services
from tests.edge.conftest import api_call, site_toml, wait_for
from tests.edge.ocpp_boundary.test_robustness import EdgeInThread
from tests.edge.v201.conftest import STATION, station
from tests.edge.v201.test_transactions import charge, only_transaction, preauthorized

# The 2.0.1 station on a managed circuit (no meter: the needs, not the currents, are what is tested here).
MANAGED = """
[load_management]
strategy = "scheduled"
meter_values_interval = 1         # the periodic TransactionEvent the tests wait for: every second, not 5 s
[[circuits]]
id = "grid"
limit = 40
"""
STATION_ON_CIRCUIT = f"""
[[chargers]]
id = "{STATION}"
max_current = 32
phases = 3
"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def test_K15_needs_before_the_start_reach_the_planner_when_the_transaction_starts(make_edge):
    """K15: ISO 15118 sends the car's needs before the power path closes, so before the transaction may have
    started: answered Processing and held; once the transaction starts it is the session's need, source
    iso15118, shown in GET /dlm. A renegotiation during the session (K15/K17) is Accepted and replaces it."""
    async with make_edge(extra=MANAGED, chargers=STATION_ON_CIRCUIT) as edge, station(edge, evses=1) as sim:
        await sim.wait_online()
        departure = (_now() + timedelta(hours=3)).replace(microsecond=0)
        answer = await services.charging_needs(sim, 1, departure=departure, energy_wh=30_000, max_current=16)
        assert answer.status == "Processing"
        assert edge.load_manager.car_max[(STATION, 1)] == 16.0      # its evMaxCurrent: planned as a known 16 A car
        preauthorized(sim, "TAG-OK")
        await charge(sim, "TAG-OK", periodic=1)
        tx = (await only_transaction(edge))["id"]
        manager = edge.load_manager
        need = await wait_for(lambda: manager.needs.get(tx) if getattr(manager.needs.get(tx), "source", None)
                              == ISO15118 else None, timeout=10, what="the car's need on its transaction")
        assert need.energy_wh == 30_000 and need.departure == departure
        row = next(c for c in (await api_call(edge, "GET", "/dlm"))["connectors"] if c["charger_id"] == STATION)
        assert row["needs"]["source"] == ISO15118 and row["needs"]["energy_kwh"] == 30

        sooner = (_now() + timedelta(hours=1)).replace(microsecond=0)
        answer = await services.charging_needs(sim, 1, departure=sooner, energy_wh=10_000)
        assert answer.status == "Accepted"
        assert (manager.needs[tx].departure, manager.needs[tx].energy_wh) == (sooner, 10_000)


async def test_K15_needs_rejected_where_nobody_plans_and_the_session_goes_on(make_edge):
    """Without load management (or for an EVSE on no managed circuit) nobody plans with the needs: Rejected
    with why (statusInfo), and the station's session goes on."""
    async with make_edge(chargers=STATION_ON_CIRCUIT) as edge, station(edge, evses=1) as sim:
        await sim.wait_online()
        answer = await services.charging_needs(sim, 1, departure=_now() + timedelta(hours=2), energy_wh=20_000)
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "NoSmartCharging"
        assert (await services.ev_charging_schedule(sim, 1, [16.0, 10.0])).status == "Accepted"
        assert edge.load_manager is None


async def test_K15_needs_with_nothing_usable_are_rejected_and_a_far_departure_clamped(make_edge, caplog):
    async with make_edge(extra=MANAGED, chargers=STATION_ON_CIRCUIT) as edge, station(edge, evses=1) as sim:
        await sim.wait_online()
        preauthorized(sim, "TAG-OK")
        await charge(sim, "TAG-OK", periodic=1)
        tx = (await only_transaction(edge))["id"]
        await wait_for(lambda: edge.load_manager.tracks[(STATION, 1)].transaction_id == tx, what="the session seen")
        answer = await services.charging_needs(sim, 1, departure=_now() - timedelta(minutes=5), energy_wh=0)
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "InvalidValue"
        assert "not after now" in answer.status_info["additional_info"]
        assert tx not in edge.load_manager.needs
        answer = await services.charging_needs(sim, 1, departure=_now() + timedelta(days=30), energy_wh=10 ** 9)
        assert answer.status == "Accepted"
        need = edge.load_manager.needs[tx]
        assert need.energy_wh == MAX_ENERGY_KWH * 1000 and need.departure - _now() <= MAX_AHEAD
        assert "planned as 200000 Wh" in caplog.text and "48 h ahead" in caplog.text


def test_from_car_reads_dc_needs_from_the_battery_room():
    now = _now()
    read = from_car({"requested_energy_transfer": "DC", "dc_charging_parameters": {
        "ev_max_current": 200, "ev_max_voltage": 800, "state_of_charge": 30, "full_soc": 90,
        "ev_energy_capacity": 80_000}}, now)
    assert read.need is not None and read.need.energy_wh == pytest.approx(48_000) and read.need.departure is None
    assert read.phases is None and read.max_current == 200
    read = from_car({"requested_energy_transfer": "AC_single_phase", "ac_charging_parameters": {
        "energy_amount": 5000, "ev_min_current": 6, "ev_max_current": 16, "ev_max_voltage": 230}}, now)
    assert (read.phases, read.min_current, read.max_current) == (1, 6, 16) and read.need.energy_wh == 5000


# -- the frame boundary -------------------------------------------------------------------------------

ERRORS = {"FormatViolation", "PropertyConstraintViolation", "OccurrenceConstraintViolation",
          "OccurenceConstraintViolation", "TypeConstraintViolation", "ProtocolError"}
EXTREME = [0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 2 ** 63 - 1, 2 ** 63, 2 ** 70, -(2 ** 63), 10 ** 30]
INTS = st.one_of(st.sampled_from(EXTREME), st.integers(-(2 ** 40), 2 ** 40))
DEPARTURES = st.one_of(
    st.none(),
    st.sampled_from(["", "now", "2026-13-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                     "2026-12-07T10:00:00", "0001-01-01T00:00:00+00:00", "2026-12-07T10:00:00+25:00"]),
    st.text(max_size=40),
    st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400)).map(
        lambda d: (_now() + d).isoformat()))
TRANSFERS = st.sampled_from(["AC_single_phase", "AC_two_phase", "AC_three_phase", "DC", "AC_nine_phase"])


@st.composite
def needs_frames(draw) -> dict:
    needs: dict = {"requestedEnergyTransfer": draw(TRANSFERS)}
    departure = draw(DEPARTURES)
    if departure is not None:
        needs["departureTime"] = departure
    if draw(st.booleans()):
        needs["acChargingParameters"] = {"energyAmount": draw(INTS), "evMinCurrent": draw(INTS),
                                         "evMaxCurrent": draw(INTS), "evMaxVoltage": draw(INTS)}
    elif draw(st.booleans()):
        needs["dcChargingParameters"] = {"evMaxCurrent": draw(INTS), "evMaxVoltage": draw(INTS),
                                         "energyAmount": draw(INTS), "stateOfCharge": draw(INTS),
                                         "evEnergyCapacity": draw(INTS)}
    return {"evseId": draw(st.one_of(st.just(1), INTS)), "chargingNeeds": needs}


def test_needs_at_the_frame_boundary_are_refused_or_bounded_and_the_session_goes_on(tmp_path):
    """Hypothesis over NotifyEVChargingNeeds frames from a raw 2.0.1 client with a running transaction: every
    frame is answered (Accepted, Processing, Rejected, or a CALLERROR naming the bound), the session keeps
    answering, and what reaches the planner is always after now, at most MAX_AHEAD ahead, at most
    MAX_ENERGY_KWH."""
    from websockets.sync.client import connect

    edge = EdgeInThread(tmp_path)
    edge.config = parse_config(site_toml(tmp_path, extra=MANAGED, chargers=STATION_ON_CIRCUIT), "test.toml",
                               state_dir=str(tmp_path))
    ids = count()

    def call(ws, action: str, payload: dict) -> list:
        unique_id = f"h{next(ids)}"
        ws.send(json.dumps([2, unique_id, action, payload]))
        while True:
            answer = json.loads(ws.recv(timeout=10))
            if answer[0] != 2:
                assert answer[1] == unique_id, answer
                return answer
            # The edge's own requests (device model, load management): this raw station takes none.
            ws.send(json.dumps([4, answer[1], "NotSupported", "raw test client", {}]))

    with edge, connect(edge.url(STATION), subprotocols=["ocpp2.0.1"], proxy=None, open_timeout=5) as ws:
        assert call(ws, "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                             "reason": "PowerUp"})[2]["status"] == "Accepted"
        started = call(ws, "TransactionEvent", {
            "eventType": "Started", "timestamp": _now().isoformat(), "triggerReason": "Authorized", "seqNo": 0,
            "transactionInfo": {"transactionId": "T-1"}, "idToken": {"idToken": "TAG-OK", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1}, "meterValue": [{"timestamp": _now().isoformat(), "sampledValue": [
                {"value": 100, "measurand": "Energy.Active.Import.Register"}]}]})
        assert started[0] == 3 and started[2]["idTokenInfo"]["status"] == "Accepted", started
        manager = edge.edge.load_manager

        async def tracked():
            await wait_for(lambda: manager.tracks[(STATION, 1)].transaction_id is not None, timeout=10,
                           what="the transaction tracked")
            return manager.tracks[(STATION, 1)].transaction_id
        tx = edge.run(tracked())
        seen: dict[str, int] = {}

        @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(needs_frames())
        def example(payload: dict) -> None:
            answer = call(ws, "NotifyEVChargingNeeds", payload)
            if answer[0] == 3:
                assert answer[2]["status"] in ("Accepted", "Processing", "Rejected"), answer
                seen[answer[2]["status"]] = seen.get(answer[2]["status"], 0) + 1
            else:
                assert answer[0] == 4 and answer[2] in ERRORS, answer
                seen[answer[2]] = seen.get(answer[2], 0) + 1

            async def need():
                return manager.needs.get(tx)
            declared = edge.run(need())
            if declared is not None:
                now = _now()
                assert declared.energy_wh is None or 0 < declared.energy_wh <= MAX_ENERGY_KWH * 1000
                # (the departure was after now when it was set; a few seconds of the run may have passed since)
                assert declared.departure is None or (
                    now - timedelta(minutes=5) < declared.departure <= now + MAX_AHEAD)
        example()
        print("answers:", seen)
        assert seen.get("Accepted") and seen.get("Rejected"), seen
        assert call(ws, "Heartbeat", {})[0] == 3


# -- what the station has and plans ------------------------------------------------------------------

async def test_K09_K08_reported_profiles_kept_per_request_and_the_composite_schedule_returned(make_edge):
    """K09 (GetChargingProfiles -> ReportChargingProfiles, kept per requestId for the operator) and K08
    (GetCompositeSchedule: the station's answer is the result's response) against the simulated station."""
    from edge.ocpp.v201 import services as edge_services
    from edge.stations.model import ChargingLimit, LimitPurpose
    from tests.edge.v201.conftest import SITE_CHARGERS

    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        control = edge.control.adapter(STATION)
        limit = ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0, evse=1, phases=3)
        assert (await control.set_charging_limit(STATION, limit, actor="t", reason="r")).outcome == "ok"
        asked = await control.charging_profiles(STATION, 501, actor="operator", reason="what the station holds")
        assert asked.outcome == "ok" and asked.response["status"] == "Accepted", asked
        report = await wait_for(lambda: (lambda r: r if r is not None and r.complete else None)(
            edge_services.reported_profiles(edge.ocpp.site, STATION, 501)), what="the station's report")
        assert [(p["id"], p["charging_profile_purpose"], p["evse_id"]) for p in report.profiles] == [
            (7, "TxDefaultProfile", 1)]
        assert edge_services.reported_profiles(edge.ocpp.site, STATION, 999) is None
        composite = await control.composite_schedule(STATION, 1, 3600, unit="A", actor="operator", reason="r")
        assert composite.outcome == "ok" and composite.response["status"] == "Accepted", composite
        periods = composite.response["schedule"]["chargingSchedulePeriod"]
        assert periods[0]["limit"] == 10
