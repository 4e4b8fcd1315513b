"""OCA OCPP 2.0.1 block K, CSMS side: the external charging limits (K11/K12 NotifyChargingLimit, K13
ClearedChargingLimit, TC_K_48, TC_K_50, TC_K_51, TC_K_52), each test named after its case, and what the site
does with them: the station applies the lower of its external limit and the site's profile, so the load
manager counts on no more for that EVSE and gives the rest to the other cars. The real edge and the simulated
2.0.1 station (simulator.v201) over real WebSockets; TC_K_52 a raw station that reports an external-constraints
profile (the simulated one holds none); hypothesis over raw NotifyChargingLimit frames at the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201 import call
from websockets.asyncio.client import connect

from edge.config import parse_config
from edge.ocpp.v201 import charging_limits
from edge.ocpp.v201.charging_limits import MAX_A, in_force, per_phase
from tests.edge.conftest import api_call, ocpp_url, site_toml, wait_for
from tests.edge.ocpp_boundary.test_robustness import EdgeInThread
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.v201.test_load_management import LM, SITE, start

EVSE1, EVSE2 = (STATION, 1), (STATION, 2)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def schedule(*limits: float, unit: str = "A", start: datetime | None = None, step: int = 3600,
             phases: int | None = None, duration: int | None = None) -> dict[str, Any]:
    periods = [{"start_period": i * step, "limit": limit, **({"number_phases": phases} if phases else {})}
               for i, limit in enumerate(limits)]
    out: dict[str, Any] = {"id": 1, "charging_rate_unit": unit, "charging_schedule_period": periods}
    if start is not None:
        out["start_schedule"] = iso(start)
    if duration is not None:
        out["duration"] = duration
    return out


async def notify(sim, source: str = "EMS", evse: int | None = None, schedules: list | None = None,
                 critical: bool | None = None) -> Any:
    limit = {"charging_limit_source": source, **({} if critical is None else {"is_grid_critical": critical})}
    return await sim.link.send(call.NotifyChargingLimit(charging_limit=limit, evse_id=evse,
                                                        charging_schedule=schedules))


async def clear(sim, source: str = "EMS", evse: int | None = None) -> Any:
    return await sim.link.send(call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse))


def sent(events, action: str) -> list[dict]:
    """The requests the edge sent (its actions log's command.done), in order."""
    out = []
    while not events.queue.empty():
        event = events.queue.get_nowait()
        if event.kind == "command.done" and event.data["action"] == action:
            out.append(event.data)
    return out


@contextlib.asynccontextmanager
async def managed_site(make_edge):
    """The 2.0.1 station with two EVSEs on a 40 A circuit (each at most 32 A), its default profile taken."""
    async with make_edge(extra=LM, chargers=SITE) as edge, station(edge, evses=2) as sim:
        await sim.wait_online()
        await wait_for(lambda: edge.load_manager.chargers[STATION].default_sent is not None, what="the default taken")
        yield edge, sim


async def two_cars(edge, sim) -> None:
    await start(sim, 1, "TAG-OK")
    await start(sim, 2, "TAG-2")
    await wait_for(lambda: sim.offered_current(1) == 20.0 and sim.offered_current(2) == 20.0, what="an equal split")


async def test_TC_K_48_CSMS_set_update_external_charging_limit_not_on_a_transaction(make_edge):
    """K12: a NotifyChargingLimit with chargingLimitSource EMS only (no schedule, no EVSE: the whole station)
    is answered; the edge keeps it (readable in GET /smart-charging) and asks the station for that source's
    profiles (GetChargingProfiles, chargingLimitSource EMS) to learn how much it is."""
    async with managed_site(make_edge) as (edge, sim):
        events = edge.bus.subscribe()
        assert await notify(sim) is not None
        [asked] = await wait_for(lambda: sent(events, "GetChargingProfiles"), what="the edge asking for the limit")
        assert asked["params"]["chargingProfile"] == {"chargingLimitSource": ["EMS"]}
        assert "evseId" not in asked["params"] and asked["outcome"] == "ok"
        kept = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["external_limits"]
        assert [(k["evse_id"], k["charging_limit_source"], k["charging_schedule"]) for k in kept] == [(0, "EMS", [])]
        # Nothing known of its size: the site counts on its EVSEs as before.
        assert edge.load_manager.external_limits == {}

        # With a schedule (K12.FR.03), not on a transaction: kept, and both EVSEs get it as their ceiling.
        await notify(sim, "SO", schedules=[schedule(10)], critical=True)
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 10.0, EVSE2: 10.0},
                       what="the station's limit on both EVSEs")
        kept = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["external_limits"]
        assert (kept[0]["charging_limit_source"], kept[0]["is_grid_critical"], kept[0]["in_force_a"]) == \
            ("SO", True, {"0": 10.0, "1": 10.0, "2": 10.0})
        assert kept[0]["charging_schedule"][0]["charging_schedule_period"] == [{"start_period": 0, "limit": 10}]


async def test_TC_K_48_CSMS_an_external_limit_during_transactions_goes_to_the_other_car(make_edge):
    """K11: the station holds EVSE 1 to 10 A itself: the load manager gives it no more and EVSE 2 the rest of
    the 40 A circuit (30 A) instead of the equal split; a limit in W is read at 230 V over its phases."""
    async with managed_site(make_edge) as (edge, sim):
        await two_cars(edge, sim)
        await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        await wait_for(lambda: sim.offered_current(1) == 10.0 and sim.offered_current(2) == 30.0,
                       what="EVSE 1 at its external limit, EVSE 2 given the rest")
        assert edge.load_manager.external_limits == {EVSE1: 10.0}
        # 4140 W on three phases is 6 A per phase (the same source on the same EVSE: replaced).
        await notify(sim, "EMS", evse=1, schedules=[schedule(4140, unit="W", phases=3)])
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 6.0}, what="6 A per phase")
        await wait_for(lambda: sim.offered_current(2) == 32.0, what="EVSE 2 at its own maximum")
        # Another source limits the whole station lower still: the lowest holds on each EVSE.
        await notify(sim, "SO", schedules=[schedule(12)])
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 6.0, EVSE2: 12.0},
                       what="each EVSE at the lowest of the limits covering it")


async def test_TC_K_48_CSMS_the_limit_follows_the_schedule_s_periods(make_edge):
    """The limit in force now is re-applied when the schedule's next period starts (and ends with it)."""
    async with managed_site(make_edge) as (edge, sim):
        # The second period starts 6 s from now: room for the notification's round trip on a loaded machine
        # (1 s was not always enough), and not much of a wait.
        began = datetime.now(timezone.utc) - timedelta(seconds=54)
        await notify(sim, "EMS", evse=2, schedules=[schedule(16, 8, start=began, step=60, duration=3600)])
        assert edge.load_manager.external_limits == {EVSE2: 16.0}
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE2: 8.0}, timeout=15,
                       what="the second period's limit once it starts")
        # A schedule already over limits nothing; one not begun yet neither, until it begins.
        await notify(sim, "EMS", evse=2, schedules=[schedule(6, start=began - timedelta(hours=2), duration=60)])
        await wait_for(lambda: edge.load_manager.external_limits == {}, what="no limit once the schedule is over")


async def test_TC_K_50_CSMS_reset_release_external_charging_limit_without_ongoing_transaction(make_edge):
    """K13: ClearedChargingLimit with chargingLimitSource EMS is answered; that source's limits are gone (of the
    whole station: no evseId), another source's stay."""
    async with managed_site(make_edge) as (edge, sim):
        await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        await notify(sim, "SO", evse=2, schedules=[schedule(16)])
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 10.0, EVSE2: 16.0}, what="both limits")
        assert await clear(sim, "EMS") is not None
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE2: 16.0}, what="EMS's limit gone")
        kept = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["external_limits"]
        assert [(k["evse_id"], k["charging_limit_source"]) for k in kept] == [(2, "SO")]
        # Clearing what is not there is answered too.
        assert await clear(sim, "Other", evse=1) is not None


async def test_TC_K_51_CSMS_reset_release_external_charging_limit_with_ongoing_transaction(make_edge):
    """K13 with transactions: the EVSE's limit is cleared, the load manager shares the circuit equally again;
    the station's TransactionEvent (ChargingRateChanged) that follows is answered."""
    async with managed_site(make_edge) as (edge, sim):
        await two_cars(edge, sim)
        await notify(sim, "EMS", evse=1, schedules=[schedule(8)])
        await wait_for(lambda: sim.offered_current(1) == 8.0 and sim.offered_current(2) == 32.0,
                       what="EVSE 1 held by the external limit")
        await clear(sim, "EMS", evse=1)
        await wait_for(lambda: sim.offered_current(1) == 20.0 and sim.offered_current(2) == 20.0,
                       timeout=10, what="the equal split again")
        assert edge.load_manager.external_limits == {}
        tx = sim.evses[1].tx.transaction_id
        sim.transaction_event(sim.evses[1], "Updated", "ChargingRateChanged")
        await wait_for(lambda: any(n == "transaction_event_answer" and d["transaction_id"] == tx
                                   and d["status"] == "Accepted" for n, d in sim.events[-20:]),
                       what="the ChargingRateChanged TransactionEvent answered")


async def test_a_limit_from_the_cso_or_that_cannot_be_one_is_refused_and_the_last_one_stays(make_edge):
    """K11.FR.05/K12.FR.04: a station never notifies a CSO limit (the site's own are its profiles): a CALLERROR
    naming the requirement. A limit that is negative, not finite, beyond any station, a phase count other than
    1-3, an empty schedule: a CALLERROR naming the field. What was applied stays, and the site runs on."""
    async with managed_site(make_edge) as (edge, sim):
        await notify(sim, "EMS", evse=1, schedules=[schedule(10)])
        await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 10.0}, what="the limit")
        bad = {"K12.FR.04": ("CSO", [schedule(6)]),
               "limit -5 A: negative": ("EMS", [schedule(-5)]),
               "not a finite number": ("EMS", [schedule(math.inf)]),
               "beyond any station": ("EMS", [schedule(1e9, unit="W")]),
               "numberPhases 4": ("EMS", [schedule(6, phases=4)])}
        for why, (source, schedules) in bad.items():
            with pytest.raises(PropertyConstraintViolationError, match=why):
                await notify(sim, source, evse=1, schedules=schedules)
        assert edge.load_manager.external_limits == {EVSE1: 10.0}
        evaluations = edge.load_manager.evaluations
        await wait_for(lambda: edge.load_manager.evaluations > evaluations, what="the load manager still evaluating")


# -- TC_K_52: a raw station that reports its external-constraints profile -----------------------------------

class RawStation:
    """A 2.0.1 station over a raw WebSocket: sends what the test says, answers the edge's requests from
    `answers` (action -> payload) or NotSupported, and keeps what the edge asked."""

    def __init__(self, ws, answers: dict[str, dict]):
        self.ws, self.answers = ws, answers
        self.asked: list[tuple[str, dict]] = []
        self._ids = count()
        self._waiting: dict[str, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            if message[0] == 2:
                self.asked.append((message[2], message[3]))
                if message[2] in self.answers:
                    await self.ws.send(json.dumps([3, message[1], self.answers[message[2]]]))
                else:
                    await self.ws.send(json.dumps([4, message[1], "NotSupported", "raw test station", {}]))
            elif message[1] in self._waiting:
                self._waiting.pop(message[1]).set_result(message)

    async def call(self, action: str, payload: dict) -> list:
        unique_id = f"r{next(self._ids)}"
        answer = self._waiting[unique_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps([2, unique_id, action, payload]))
        return await asyncio.wait_for(answer, 10)


async def test_TC_K_52_CSMS_external_constraints_in_the_report_become_the_evse_s_limit(make_edge):
    """K12/K09: the station notifies an EMS limit without its schedule; the edge sends GetChargingProfiles
    (chargingLimitSource EMS); the station answers Accepted and reports a ChargingStationExternalConstraints
    profile under that requestId: the ReportChargingProfiles is answered, kept under the request, and its
    16 A is EVSE 1's limit for the load manager."""
    async with make_edge(extra=LM, chargers=SITE) as edge:
        async with connect(ocpp_url(edge, STATION), subprotocols=["ocpp2.0.1"]) as ws:
            raw = RawStation(ws, {"GetChargingProfiles": {"status": "Accepted"}})
            boot = await raw.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                                       "reason": "PowerUp"})
            assert boot[2]["status"] == "Accepted"
            assert (await raw.call("NotifyChargingLimit", {"evseId": 1,
                                                           "chargingLimit": {"chargingLimitSource": "EMS"}}))[0] == 3
            [ask] = await wait_for(lambda: [p for a, p in raw.asked if a == "GetChargingProfiles"],
                                   what="GetChargingProfiles from the edge")
            assert ask["chargingProfile"] == {"chargingLimitSource": ["EMS"]} and ask["evseId"] == 1
            report = await raw.call("ReportChargingProfiles", {
                "requestId": ask["requestId"], "chargingLimitSource": "EMS", "evseId": 1, "chargingProfile": [{
                    "id": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationExternalConstraints",
                    "chargingProfileKind": "Absolute", "chargingSchedule": [{
                        "id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                       "limit": 16.0}]}]}]})
            assert report[0] == 3, report
            await wait_for(lambda: edge.load_manager.external_limits == {EVSE1: 16.0}, what="EVSE 1's limit")
            smart = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
            [kept] = [r for r in smart["reports"] if r["request_id"] == ask["requestId"]]
            assert kept["complete"] and kept["profiles"][0]["charging_profile_purpose"] == \
                "ChargingStationExternalConstraints"
            [limit] = smart["external_limits"]
            assert (limit["evse_id"], limit["via"], limit["in_force_a"]) == (1, "ReportChargingProfiles", {"1": 16.0})
            # A reported profile that cannot be a limit is left out (logged); the report is still answered.
            bad = await raw.call("ReportChargingProfiles", {
                "requestId": ask["requestId"], "chargingLimitSource": "EMS", "evseId": 1, "chargingProfile": [{
                    "id": 2, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationExternalConstraints",
                    "chargingProfileKind": "Absolute", "chargingSchedule": [{
                        "id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                       "limit": -16.0}]}]}]})
            assert bad[0] == 3 and edge.load_manager.external_limits == {EVSE1: 16.0}
            raw.reader.cancel()


async def test_TC_K_48_CSMS_without_load_management_the_limit_is_kept_for_the_operator(make_edge):
    """A site without load management answers and keeps the limit all the same (what the station says it is held
    to, per EVSE, for the operator); nothing else depends on it."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge, evses=2) as sim:
        await sim.wait_online()
        assert edge.load_manager is None
        assert await notify(sim, "SO", schedules=[schedule(6900, unit="W")], critical=True) is not None
        [kept] = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["external_limits"]
        assert (kept["evse_id"], kept["is_grid_critical"], kept["in_force_a"]) == (0, True, {"0": 10.0})


# -- the pure pieces --------------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_the_period_in_force_and_the_next_change():
    s = schedule(16, 8, 0, start=NOW - timedelta(seconds=30), step=60, duration=180)
    assert (in_force(s, NOW, NOW).limit, in_force(s, NOW, NOW).next_change) == (16.0, NOW + timedelta(seconds=30))
    later = NOW + timedelta(seconds=100)
    assert (in_force(s, later, NOW).limit, in_force(s, later, NOW).next_change) == (0.0, NOW + timedelta(seconds=150))
    assert in_force(s, NOW + timedelta(seconds=150), NOW) == charging_limits.InForce(None, "A", None, None)
    ahead = schedule(10, start=NOW + timedelta(minutes=5))
    assert (in_force(ahead, NOW, NOW).limit, in_force(ahead, NOW, NOW).next_change) == \
        (None, NOW + timedelta(minutes=5))
    # No startSchedule: from when it was received.
    assert in_force(schedule(7, 9, step=60), NOW, NOW - timedelta(seconds=61)).limit == 9.0


@given(st.floats(0, 1e6), st.sampled_from([None, 1, 2, 3]), st.integers(1, 3))
def test_watts_become_amps_per_phase_at_230_v(watts, phases, evse_phases):
    amps = per_phase(watts, "W", phases, evse_phases)
    assert math.isclose(amps * 230 * (phases or evse_phases), watts, rel_tol=1e-9, abs_tol=1e-9)
    assert per_phase(watts, "A", phases, evse_phases) == watts


# -- the boundary: raw frames ----------------------------------------------------------------------------------

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 12, 10 ** 12))
periods = st.lists(st.fixed_dictionaries({"startPeriod": st.integers(-10, 10 ** 6), "limit": numbers},
                                         optional={"numberPhases": st.integers(-1, 5)}), max_size=4)
schedules_raw = st.lists(st.fixed_dictionaries(
    {"id": st.integers(0, 5), "chargingRateUnit": st.sampled_from(["A", "W"]), "chargingSchedulePeriod": periods},
    optional={"duration": st.integers(-10, 10 ** 6),
              "startSchedule": st.sampled_from(["2026-12-07T10:00:00Z", "not a time", "2099-01-01T00:00:00Z"])}),
    max_size=3)
frames = st.fixed_dictionaries(
    {"chargingLimit": st.fixed_dictionaries({"chargingLimitSource": st.sampled_from(["EMS", "SO", "Other", "CSO"])},
                                            optional={"isGridCritical": st.booleans()})},
    optional={"evseId": st.integers(-3, 4), "chargingSchedule": schedules_raw})
clears = st.fixed_dictionaries({"chargingLimitSource": st.sampled_from(["EMS", "SO", "Other", "CSO"])},
                               optional={"evseId": st.integers(-3, 4)})


def test_notify_charging_limit_frames_are_answered_and_what_reaches_the_load_manager_is_a_limit(tmp_path):
    """Hypothesis over raw NotifyChargingLimit frames (NaN, infinities, negatives, huge values, bad phases and
    times, unknown EVSEs), each maybe followed by a ClearedChargingLimit: each is answered (an empty CallResult, or a CALLERROR naming the field); the session
    keeps answering; every ceiling the load manager holds is a finite number from 0 to MAX_A; and it keeps
    evaluating."""
    from websockets.sync.client import connect as sync_connect

    edge = EdgeInThread(tmp_path)
    # (the flood guard is not what is tested: hypothesis sends hundreds of frames as fast as it can)
    toml = site_toml(tmp_path, extra=LM, chargers=SITE).replace(
        "[ocpp]\n", "[ocpp]\nmax_messages_per_second = 100000\nmessage_burst = 100000\n", 1)
    edge.config = parse_config(toml, "test.toml", state_dir=str(tmp_path))
    ids = count()

    def exchange(ws, action: str, payload: dict) -> list:
        unique_id = f"h{next(ids)}"
        text = json.dumps([2, unique_id, action, payload])   # NaN and Infinity as Python writes them
        ws.send(text)
        while True:
            answer = json.loads(ws.recv(timeout=10))
            if answer[0] != 2:
                assert answer[1] == unique_id, answer
                return answer
            ws.send(json.dumps([4, answer[1], "NotSupported", "raw test client", {}]))

    with edge, sync_connect(edge.url(STATION), subprotocols=["ocpp2.0.1"], proxy=None, open_timeout=5) as ws:
        assert exchange(ws, "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                                 "reason": "PowerUp"})[2]["status"] == "Accepted"
        manager = edge.edge.load_manager
        seen: dict[str, int] = {}

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(frames, st.one_of(st.none(), clears))
        def example(payload: dict, clear: dict | None) -> None:
            for action, frame in (("NotifyChargingLimit", payload), ("ClearedChargingLimit", clear)):
                if frame is None:
                    continue
                answer = exchange(ws, action, frame)
                if answer[0] == 3:
                    assert answer[2] == {}, answer
                    seen["answered"] = seen.get("answered", 0) + 1
                else:
                    assert answer[0] == 4 and isinstance(answer[3], str) and answer[3], answer
                    seen[answer[2]] = seen.get(answer[2], 0) + 1

            async def ceilings():
                return dict(manager.external_limits)
            for value in edge.run(ceilings()).values():
                assert math.isfinite(value) and 0 <= value <= MAX_A, value
        example()
        print("answers:", seen)
        assert seen.get("answered") and seen.get("PropertyConstraintViolation"), seen
        assert exchange(ws, "Heartbeat", {})[0] == 3

        async def evaluations():
            return manager.evaluations
        before = edge.run(evaluations())

        async def later():
            await wait_for(lambda: manager.evaluations > before, what="the load manager still evaluating")
        edge.run(later())
