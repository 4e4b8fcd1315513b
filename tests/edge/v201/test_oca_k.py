"""OCA OCPP 2.0.1 test cases of block K (Smart Charging), CSMS side, each named after its case: the real edge
and the simulated 2.0.1 station (simulator.v201) over real WebSockets. What the case expects of the CSMS is
asserted on the wire (the request as the edge sent it, checked against the library's 2.0.1 schema, and what
the station holds after it) and what the site does with the answer.

Who sends what at the site: the load manager sends the TxDefaultProfile on EVSE 0 (TC_K_10) and a TxProfile
per transaction naming the station's own transactionId (TC_K_60) by itself, and takes a station without
smart charging as refusing (TC_K_15); the rest is the 2.0.1 adapter's (`edge.control.adapter(id)`:
set_charging_limit, clear_charging_limit / clear_charging_limits, charging_profiles, composite_schedule),
what commissioning and an operator use.

Not applicable (docs/ocpp-201.md, "Tests"): TC_K_02 (a TxProfile without a transaction: the site sends
TxProfiles only for running transactions, the case's prerequisite), TC_K_19 (Recurring: the site's profiles
are Relative or Absolute), TC_K_37 (a profile inside RequestStartTransaction: the site's TxProfile follows the
transaction's start). Elsewhere: the external-limit cases (TC_K_48/50/51/52, NotifyChargingLimit and
ClearedChargingLimit) in test_oca_k_external_limits.py, the ISO 15118 ones (TC_K_53/55/57/58/59) in
test_oca_k_iso15118.py; K15's needs at the boundary are test_charging_needs.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

import pytest
from hypothesis import given, strategies as st
from ocpp.messages import Call, _validate_payload

from edge.ocpp.v201.control import ALL_SOURCES, clear_criteria, profiles_criterion
from edge.stations.model import ChargingLimit, LimitPurpose
from tests.edge.conftest import wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station as _station
from tests.edge.v201.test_load_management import LM, SITE as LM_SITE, start

A = "t"


def schema_valid(action: str, params: dict) -> None:
    """The ocpp library's 2.0.1 JSON schema check of what the edge sent (raises if not valid)."""
    _validate_payload(Call("1", action, json.loads(json.dumps(params))), "2.0.1")


@contextlib.asynccontextmanager
async def station(edge, **kwargs):
    async with _station(edge, **kwargs) as sim:
        await sim.wait_online()
        yield sim, edge.control.adapter(STATION)


def held(sim) -> list[tuple[int, int, str]]:
    """What the station holds: (evseId, profile id, purpose)."""
    return sorted((s.evse_id, s.installed.profile.id, s.raw["charging_profile_purpose"]) for s in sim.stored_profiles)


async def set_limit(control, limit: ChargingLimit):
    result = await control.set_charging_limit(STATION, limit, actor=A, reason="OCA K")
    schema_valid("SetChargingProfile", result.request)
    return result


async def test_TC_K_01_CSMS_set_charging_profile_tx_default_profile_specific_evse(make_edge):
    """K01: a TxDefaultProfile for EVSE 1: evseId 1, the purpose, startPeriod 0 first (K01.FR.31); Accepted."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        result = await set_limit(control, ChargingLimit(7, LimitPurpose.TX_DEFAULT, 16, 0, evse=1, phases=3))
        assert (result.outcome, result.response) == ("ok", {"status": "Accepted"})
        profile = result.request["chargingProfile"]
        assert result.request["evseId"] == 1 and "transactionId" not in profile
        assert (profile["id"], profile["stackLevel"], profile["chargingProfilePurpose"],
                profile["chargingProfileKind"]) == (7, 0, "TxDefaultProfile", "Relative")
        [schedule] = profile["chargingSchedule"]
        assert schedule["chargingRateUnit"] == "A"
        assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16, "numberPhases": 3}]
        assert held(sim) == [(1, 7, "TxDefaultProfile")]


async def test_TC_K_03_CSMS_set_charging_profile_charging_station_max_profile(make_edge):
    """K01: ChargingStationMaxProfile: on evseId 0, never Relative (K01.FR.38: Absolute from now)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        result = await set_limit(control, ChargingLimit(1, LimitPurpose.STATION_MAX, 32, 0, evse=1))
        assert (result.outcome, result.response) == ("ok", {"status": "Accepted"})
        profile = result.request["chargingProfile"]
        assert result.request["evseId"] == 0
        assert (profile["chargingProfilePurpose"], profile["chargingProfileKind"]) == \
            ("ChargingStationMaxProfile", "Absolute")
        [schedule] = profile["chargingSchedule"]
        assert "startSchedule" in schedule and schedule["chargingSchedulePeriod"][0]["startPeriod"] == 0
        assert held(sim) == [(0, 1, "ChargingStationMaxProfile")]


async def test_TC_K_04_CSMS_replace_charging_profile_with_the_same_id(make_edge):
    """K01.FR.05: a profile with an id the station holds replaces it: one profile, the new limit in force
    (the station's composite schedule says so)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        for amps in (16, 6):
            result = await set_limit(control, ChargingLimit(7, LimitPurpose.TX_DEFAULT, amps, 0, evse=1, phases=3))
            assert result.outcome == "ok", result
        assert held(sim) == [(1, 7, "TxDefaultProfile")]
        composite = await control.composite_schedule(STATION, 1, 600, unit="A", actor=A, reason="OCA K")
        assert composite.response["schedule"]["chargingSchedulePeriod"][0]["limit"] == 6


async def test_TC_K_05_CSMS_clear_charging_profile_with_charging_profile_id(make_edge):
    """K10.FR.02: ClearChargingProfile naming the id only; Accepted, the station holds the others."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        for pid, evse in ((7, 1), (8, 2)):
            assert (await set_limit(control, ChargingLimit(pid, LimitPurpose.TX_DEFAULT, 10, 0, evse=evse))).outcome == "ok"
        result = await control.clear_charging_limit(STATION, 7, actor=A, reason="OCA K")
        schema_valid("ClearChargingProfile", result.request)
        assert result.request == {"chargingProfileId": 7}
        assert (result.outcome, result.response) == ("ok", {"status": "Accepted"})
        assert held(sim) == [(2, 8, "TxDefaultProfile")]


async def test_TC_K_06_CSMS_clear_charging_profile_with_stack_level_and_purpose_for_one_profile(make_edge):
    """K10.FR.02: no id, the criteria stackLevel and purpose: the one profile matching both is cleared."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        for pid, level in ((7, 0), (8, 1)):
            limit = ChargingLimit(pid, LimitPurpose.TX_DEFAULT, 10, level, evse=1)
            assert (await set_limit(control, limit)).outcome == "ok"
        result = await control.clear_charging_limits(STATION, purpose=LimitPurpose.TX_DEFAULT, stack_level=1,
                                                     actor=A, reason="OCA K")
        schema_valid("ClearChargingProfile", result.request)
        assert result.request == {"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile",
                                                              "stackLevel": 1}}
        assert (result.outcome, result.response) == ("ok", {"status": "Accepted"})
        assert held(sim) == [(1, 7, "TxDefaultProfile")]


async def test_TC_K_08_CSMS_clear_charging_profile_without_previous_charging_profile(make_edge):
    """K10: the station holds nothing: it answers Unknown, which the site takes as nothing to clear (not a
    refusal, not an error), by id and by criteria alike."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        by_id = await control.clear_charging_limit(STATION, 7, actor=A, reason="OCA K")
        by_criteria = await control.clear_charging_limits(STATION, evse=1, purpose=LimitPurpose.TX_DEFAULT,
                                                          actor=A, reason="OCA K")
        for result in (by_id, by_criteria):
            schema_valid("ClearChargingProfile", result.request)
            assert (result.outcome, result.response) == ("ok", {"status": "Unknown"}), result


def sent_profiles(events) -> list[dict]:
    """The SetChargingProfile requests the edge sent, as its actions log has them (command.done)."""
    sent = []
    while not events.queue.empty():
        event = events.queue.get_nowait()
        if event.kind == "command.done" and event.data["action"] == "SetChargingProfile":
            sent.append(event.data)
    return sent


async def test_TC_K_10_and_TC_K_60_CSMS_the_load_manager_sets_the_tx_default_profile_on_all_evses_and_a_tx_profile_for_the_transaction(
        make_edge):
    """K_10: at the station's boot the load manager's TxDefaultProfile on evseId 0 (every EVSE), Relative,
    startPeriod 0, in the unit the station takes; K_60: when a transaction runs, a TxProfile on its EVSE
    naming the station's own transactionId (K01.FR.03), Absolute from now; both Accepted and in force."""
    async with make_edge(extra=LM, chargers=LM_SITE) as edge:
        events = edge.bus.subscribe()
        async with _station(edge, evses=2) as sim:
            dlm = edge.load_manager
            await wait_for(lambda: dlm.chargers[STATION].default_sent is not None, what="the default taken")
            sent: list[dict] = []

            def of(purpose: str) -> list[dict]:
                sent.extend(sent_profiles(events))
                return [d for d in sent if d["params"]["chargingProfile"]["chargingProfilePurpose"] == purpose]
            [default] = await wait_for(lambda: of("TxDefaultProfile"), what="the default in the actions log")
            assert default["outcome"] == "ok" and default["actor"]
            schema_valid("SetChargingProfile", default["params"])
            profile = default["params"]["chargingProfile"]
            assert default["params"]["evseId"] == 0 and "transactionId" not in profile
            assert profile["chargingProfileKind"] == "Relative"
            assert profile["stackLevel"] <= dlm.chargers[STATION].max_stack_level
            [schedule] = profile["chargingSchedule"]
            assert schedule["chargingRateUnit"] == "A" and schedule["chargingSchedulePeriod"][0]["startPeriod"] == 0
            assert [p for p in held(sim) if p[2] == "TxDefaultProfile"] == [(0, profile["id"], "TxDefaultProfile")]

            await start(sim, 1, "TAG-OK")
            [tx, *_] = await wait_for(lambda: of("TxProfile"), what="the transaction's TxProfile")
            assert tx["outcome"] == "ok", tx
            schema_valid("SetChargingProfile", tx["params"])
            profile = tx["params"]["chargingProfile"]
            assert tx["params"]["evseId"] == 1
            assert profile["transactionId"] == sim.evses[1].tx.transaction_id
            assert profile["chargingProfileKind"] == "Absolute"
            assert profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["startPeriod"] == 0
            await wait_for(lambda: sim.offered_current(1) == 32.0, what="the car offered its TxProfile's limit")


async def test_TC_K_15_CSMS_set_charging_profile_not_supported(make_edge):
    """K01: a station without smart charging answers CALLERROR NotSupported: the load manager does not take
    it as steered (it holds nothing) and the car still charges; nothing else breaks."""
    from simulator.v201 import SimulatedStation

    async with make_edge(extra=LM, chargers=LM_SITE) as edge:
        sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", evses=2,
                               reconnect_delay=0.05, ramp_seconds=0.2)
        sim.profiles_not_supported = True
        task = asyncio.create_task(sim.run())
        try:
            await sim.wait_accepted()
            dlm = edge.load_manager
            await wait_for(lambda: dlm.chargers[STATION].refused_at is not None, what="the station's NotSupported")
            assert dlm.chargers[STATION].default_sent is None and not sim.stored_profiles
            assert any(n == "request" and d.get("action") == "SetChargingProfile" and d["status"] == "NotSupported"
                       for n, d in sim.events)
            await start(sim, 1, "TAG-OK")
            await wait_for(lambda: sim.offered_current(1) > 0, what="the car charging anyway")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def reported(edge, request_id: int):
    from edge.ocpp.v201 import services
    return await wait_for(lambda: (lambda r: r if r is not None and r.complete else None)(
        services.reported_profiles(edge.ocpp.site, STATION, request_id)), what=f"report {request_id}")


async def test_TC_K_29_to_TC_K_36_CSMS_get_charging_profiles_by_evse_and_criteria(make_edge):
    """K09.FR.03: every GetChargingProfilesRequest names a criterion (profile ids, or one or more of
    stackLevel, chargingLimitSource, purpose), never an empty one. Each case's request as its tool validation
    says: K_29 evseId 0 + purpose; K_30 evseId > 0; K_31 no evseId (every profile: every source named);
    K_32 chargingProfileId; K_33 evseId > 0 + stackLevel only; K_34 evseId > 0 + chargingLimitSource;
    K_35 evseId > 0 + purpose; K_36 evseId > 0 + purpose + stackLevel. Accepted, and the station's
    ReportChargingProfiles are kept under the requestId; NoProfiles when nothing matches."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        for limit in (ChargingLimit(1, LimitPurpose.STATION_MAX, 32, 0),
                      ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 1, evse=1),
                      ChargingLimit(8, LimitPurpose.TX_DEFAULT, 12, 0, evse=2)):
            assert (await set_limit(control, limit)).outcome == "ok"
        every_source = {"chargingLimitSource": ["EMS", "Other", "SO", "CSO"]}
        tx_default = LimitPurpose.TX_DEFAULT
        asks = {
            29: (dict(evse=0, purpose=LimitPurpose.STATION_MAX),
                 {"chargingProfilePurpose": "ChargingStationMaxProfile"}, [1]),
            30: (dict(evse=1), every_source, [7]),
            31: (dict(), every_source, [1, 7, 8]),
            32: (dict(profile_ids=[8]), {"chargingProfileId": [8]}, [8]),
            33: (dict(evse=1, stack_level=1), {"stackLevel": 1}, [7]),
            34: (dict(evse=2, sources=["CSO"]), {"chargingLimitSource": ["CSO"]}, [8]),
            35: (dict(evse=1, purpose=tx_default), {"chargingProfilePurpose": "TxDefaultProfile"}, [7]),
            36: (dict(evse=1, purpose=tx_default, stack_level=1),
                 {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}, [7]),
        }
        for case, (kwargs, criterion, ids) in asks.items():
            request_id = 500 + case
            asked = await control.charging_profiles(STATION, request_id, actor=A, reason=f"TC_K_{case}", **kwargs)
            schema_valid("GetChargingProfiles", asked.request)
            assert asked.request["requestId"] == request_id
            assert asked.request["chargingProfile"] == criterion, case
            assert asked.request.get("evseId") == kwargs.get("evse"), case
            assert (asked.outcome, asked.response) == ("ok", {"status": "Accepted"}), asked
            report = await reported(edge, request_id)
            assert sorted(p["id"] for p in report.profiles) == ids, case
        nothing = await control.charging_profiles(STATION, 600, evse=2, stack_level=5, actor=A, reason="OCA K")
        assert (nothing.outcome, nothing.response) == ("ok", {"status": "NoProfiles"})


async def test_TC_K_70_CSMS_set_charging_profile_multiple_profiles(make_edge):
    """During a transaction: a TxDefaultProfile, Absolute with its startSchedule, then a
    ChargingStationMaxProfile with another id, Absolute with its startSchedule: both Accepted, both held."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        await start(sim, 1, "TAG-OK")
        await wait_for(lambda: sim.evses[1].tx is not None, what="the transaction")
        now = edge.clock.now()
        sent = []
        for limit in (ChargingLimit(7, LimitPurpose.TX_DEFAULT, 16, 0, evse=0, start=now, duration_s=3600),
                      ChargingLimit(1, LimitPurpose.STATION_MAX, 20, 0, start=now)):
            result = await set_limit(control, limit)
            assert (result.outcome, result.response) == ("ok", {"status": "Accepted"}), result
            sent.append(result.request["chargingProfile"])
        assert [(p["id"], p["chargingProfilePurpose"], p["chargingProfileKind"]) for p in sent] == [
            (7, "TxDefaultProfile", "Absolute"), (1, "ChargingStationMaxProfile", "Absolute")]
        assert all("startSchedule" in p["chargingSchedule"][0] for p in sent)
        assert sent[0]["chargingSchedule"][0]["duration"] == 3600
        assert held(sim) == [(0, 1, "ChargingStationMaxProfile"), (0, 7, "TxDefaultProfile")]
        await wait_for(lambda: sim.offered_current(1) == 16.0, what="the car offered the lower of the two")


async def test_TC_K_43_and_TC_K_44_CSMS_get_composite_schedule_specific_evse_and_evse_0(make_edge):
    """K08: GetCompositeSchedule for an EVSE (K_43) and the whole station, evseId 0 (K_44), in A: Accepted, the
    schedule is the station's answer (the TxDefaultProfile under the station's maximum)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        for limit in (ChargingLimit(1, LimitPurpose.STATION_MAX, 20, 0), ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0,
                                                                                        evse=1)):
            assert (await set_limit(control, limit)).outcome == "ok"
        for evse in (1, 0):
            composite = await control.composite_schedule(STATION, evse, 3600, unit="A", actor=A, reason="OCA K")
            schema_valid("GetCompositeSchedule", composite.request)
            assert composite.request == {"duration": 3600, "evseId": evse, "chargingRateUnit": "A"}
            assert composite.outcome == "ok" and composite.response["status"] == "Accepted", composite
            schedule = composite.response["schedule"]
            assert (schedule["evseId"], schedule["duration"], schedule["chargingRateUnit"]) == (evse, 3600, "A")
            assert schedule["chargingSchedulePeriod"][0]["startPeriod"] == 0
        one = await control.composite_schedule(STATION, 1, 3600, unit="A", actor=A, reason="OCA K")
        assert one.response["schedule"]["chargingSchedulePeriod"][0]["limit"] == 10


async def test_TC_K_01_CSMS_a_profile_the_station_rejects_is_recorded_as_refused(make_edge):
    """K01.FR.39 at the station: a second profile with the same stackLevel and purpose on the same EVSE at the
    same time is Rejected; the site records the refusal, and the station keeps the first one."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as (sim, control):
        start_at = edge.clock.now()
        first = ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0, evse=1, start=start_at, duration_s=600)
        assert (await set_limit(control, first)).outcome == "ok"
        clash = ChargingLimit(8, LimitPurpose.TX_DEFAULT, 6, 0, evse=1, start=start_at + timedelta(seconds=60),
                              duration_s=600)
        result = await set_limit(control, clash)
        assert (result.outcome, result.response["status"]) == ("rejected", "Rejected"), result
        assert held(sim) == [(1, 7, "TxDefaultProfile")]


# -- what an operator may ask: every combination is a valid request, never an empty criterion -------------------

purposes = st.one_of(st.none(), st.sampled_from(LimitPurpose))
levels = st.one_of(st.none(), st.integers(0, 2**31 - 1))


@given(st.lists(st.integers(0, 2**31 - 1), max_size=4), purposes, levels,
       st.lists(st.sampled_from(ALL_SOURCES), max_size=4, unique=True), st.one_of(st.none(), st.integers(0, 100)))
def test_every_get_charging_profiles_request_names_a_criterion_and_is_schema_valid(ids, purpose, level, sources,
                                                                                   evse):
    criterion = profiles_criterion(ids, purpose, level, sources)
    params = {"requestId": 1, "chargingProfile": criterion, **({} if evse is None else {"evseId": evse})}
    schema_valid("GetChargingProfiles", params)
    # K09.FR.03: ids alone, or one or more of the other fields
    assert criterion and ("chargingProfileId" not in criterion or list(criterion) == ["chargingProfileId"])


@given(st.one_of(st.none(), st.integers(0, 100)), purposes, levels)
def test_every_clear_by_criteria_names_one_at_least_and_is_schema_valid(evse, purpose, level):
    if evse is None and purpose is None and level is None:
        with pytest.raises(ValueError, match="K10.FR.02"):
            clear_criteria(evse, purpose, level)
        return
    schema_valid("ClearChargingProfile", {"chargingProfileCriteria": clear_criteria(evse, purpose, level)})
