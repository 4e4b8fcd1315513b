"""OCA OCPP 2.0.1 block K, CSMS side: the ISO 15118 cases (K15 load leveling from the car's needs, K16
renegotiation by the CSMS, K17 renegotiation by the car: TC_K_53, TC_K_55, TC_K_57, TC_K_58, TC_K_59), each
test named after its case. The site's CSMS is its load manager: it sends the transaction's TxProfile (evseId,
purpose TxProfile, the station's transactionId) after an Accepted NotifyEVChargingNeeds, checks the car's
NotifyEVChargingSchedule against it (Accepted within, Rejected above and renegotiated), and renegotiates by
itself when the allocation changes. The real edge and the simulated 2.0.1 station over real WebSockets.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from edge.ocpp.v201.services import SCHEDULE_TOLERANCE_A, beyond_site_limit
from simulator.v201 import services as car
from tests.edge.conftest import api_call, wait_for
from tests.edge.v201.conftest import STATION
from tests.edge.v201.test_load_management import start
from tests.edge.v201.test_oca_k import schema_valid
from tests.edge.v201.test_oca_k_external_limits import managed_site

EVSE1 = (STATION, 1)


class TxProfiles:
    """The TxProfiles the edge sent (its actions log's command.done, SetChargingProfile), in order."""

    def __init__(self, edge):
        self.events = edge.bus.subscribe()
        self.seen: list[dict] = []

    def all(self) -> list[dict]:
        while not self.events.queue.empty():
            event = self.events.queue.get_nowait()
            if event.kind == "command.done" and event.data["action"] == "SetChargingProfile" and \
                    event.data["params"]["chargingProfile"]["chargingProfilePurpose"] == "TxProfile":
                self.seen.append(event.data)
        return self.seen

    async def next_after(self, count: int, evse: int = 1, what: str = "a TxProfile") -> dict:
        found = await wait_for(lambda: [d for d in self.all()[count:] if d["params"]["evseId"] == evse],
                               timeout=10, what=what)
        return found[0]


def checked(sent: dict, sim, evse: int = 1) -> float:
    """A TxProfile as the cases' tool validations ask (evseId, purpose TxProfile, the station's transactionId),
    Accepted; -> its limit (A)."""
    schema_valid("SetChargingProfile", sent["params"])
    profile = sent["params"]["chargingProfile"]
    assert sent["params"]["evseId"] == evse and sent["outcome"] == "ok", sent
    assert profile["transactionId"] == sim.evses[evse].tx.transaction_id
    [schedule] = profile["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "A"
    return schedule["chargingSchedulePeriod"][0]["limit"]


def _soon(hours: float) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).replace(microsecond=0)


async def iso15118_smart_charging(edge, sim, profiles: TxProfiles) -> float:
    """The reusable state ISO15118SmartCharging on EVSE 1 (a transaction runs, its TxProfile taken): the car's
    needs Accepted, the TxProfile sent after the answer, the car's schedule within it Accepted; -> its limit."""
    await start(sim, 1, "TAG-OK")
    await wait_for(lambda: edge.load_manager.tracks[EVSE1].held is not None, what="the transaction's TxProfile held")
    before = len(profiles.all())
    answer = await car.charging_needs(sim, 1, departure=_soon(3), energy_wh=30_000, max_current=32)
    assert answer.status == "Accepted", answer
    limit = checked(await profiles.next_after(before, what="the TxProfile after the needs"), sim)
    assert (await car.ev_charging_schedule(sim, 1, [limit])).status == "Accepted"
    return limit


async def test_TC_K_53_CSMS_charging_with_load_leveling_based_on_high_level_communication_success(make_edge):
    """K15.FR.02/03/05/11: needs before the transaction are answered Processing (the TxProfile follows the
    start); once it runs, needs are Accepted and a SetChargingProfile (TxProfile for the transaction) follows
    the answer; the car's schedule within it is Accepted and kept with the site's answer."""
    async with managed_site(make_edge) as (edge, sim):
        profiles = TxProfiles(edge)
        early = await car.charging_needs(sim, 1, departure=_soon(2), energy_wh=20_000)
        assert early.status == "Processing"
        limit = await iso15118_smart_charging(edge, sim, profiles)
        assert limit == 32.0    # alone on the 40 A circuit: its maximum
        kept = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["car_schedules"][0]
        assert (kept["evse_id"], kept["status"]) == (1, "Accepted")
        # Needs that name neither departure nor energy: the car is planned as one that said nothing, and still
        # gets the site's schedule (K15.FR.03).
        before = len(profiles.all())
        assert (await car.charging_needs(sim, 1)).status == "Accepted"
        checked(await profiles.next_after(before, what="the TxProfile after needs without energy"), sim)


async def test_TC_K_55_CSMS_charging_with_load_leveling_ev_charging_profile_exceeds_limits(make_edge):
    """K15.FR.12/13 (K16.FR.07/08, K17.FR.12/13): a car's schedule above the site's TxProfile is Rejected (with
    why), and the CSMS renegotiates: a new TxProfile for the transaction follows the answer; the car's
    schedule within it is then Accepted."""
    async with managed_site(make_edge) as (edge, sim):
        profiles = TxProfiles(edge)
        await start(sim, 1, "TAG-OK")
        await wait_for(lambda: edge.load_manager.tracks[EVSE1].held is not None, what="the TxProfile held")
        before = len(profiles.all())
        assert (await car.charging_needs(sim, 1, departure=_soon(3), energy_wh=30_000)).status == "Accepted"
        limit = checked(await profiles.next_after(before), sim)
        before = len(profiles.all())
        exceeding = await car.ev_charging_schedule(sim, 1, [limit, limit * 2])
        assert exceeding.status == "Rejected"
        assert exceeding.status_info["reason_code"] == "ExceedsSiteLimit"
        assert "period 1" in exceeding.status_info["additional_info"]
        again = checked(await profiles.next_after(before, what="the renegotiation's TxProfile"), sim)
        assert (await car.ev_charging_schedule(sim, 1, [again])).status == "Accepted"
        kept = (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["car_schedules"]
        assert [k["status"] for k in kept[:2]] == ["Accepted", "Rejected"] and "above" in kept[1]["why"]


async def test_TC_K_57_CSMS_renegotiating_a_charging_schedule_initiated_by_ev(make_edge):
    """K17.FR.02/03/11: during ISO15118SmartCharging the car sends new needs: Accepted (the new need is the
    transaction's), a TxProfile for the transaction follows, the car's schedule within it is Accepted."""
    async with managed_site(make_edge) as (edge, sim):
        profiles = TxProfiles(edge)
        await iso15118_smart_charging(edge, sim, profiles)
        tx = edge.load_manager.tracks[EVSE1].transaction_id
        before = len(profiles.all())
        sooner = _soon(1)
        assert (await car.charging_needs(sim, 1, departure=sooner, energy_wh=10_000)).status == "Accepted"
        assert (edge.load_manager.needs[tx].departure, edge.load_manager.needs[tx].energy_wh) == (sooner, 10_000)
        limit = checked(await profiles.next_after(before, what="the TxProfile after the new needs"), sim)
        assert (await car.ev_charging_schedule(sim, 1, [limit])).status == "Accepted"


async def test_TC_K_58_CSMS_renegotiating_a_charging_schedule_initiated_by_csms(make_edge):
    """K16.FR.06: the CSMS renegotiates by itself when the allocation changes (a second car on the circuit):
    a TxProfile for the first car's transaction with its new share; the car's schedule within it Accepted,
    one still at the old limit Rejected (K16.FR.07)."""
    async with managed_site(make_edge) as (edge, sim):
        profiles = TxProfiles(edge)
        assert await iso15118_smart_charging(edge, sim, profiles) == 32.0
        before = len(profiles.all())
        await start(sim, 2, "TAG-2")
        lowered = await wait_for(lambda: [d for d in profiles.all()[before:] if d["params"]["evseId"] == 1
                                          and checked(d, sim) == 20.0], timeout=10, what="EVSE 1 lowered to 20 A")
        assert checked(lowered[0], sim) == 20.0
        assert (await car.ev_charging_schedule(sim, 1, [20.0])).status == "Accepted"
        assert (await car.ev_charging_schedule(sim, 1, [32.0])).status == "Rejected"


async def test_TC_K_59_CSMS_renegotiating_initiated_by_csms_then_the_station_sends_needs(make_edge):
    """K16.FR.12: after the CSMS's renegotiation (its TxProfile), the station sends the car's needs again: they
    are Accepted and the CSMS sends a SetChargingProfile again (even if the same); the schedule is Accepted."""
    async with managed_site(make_edge) as (edge, sim):
        profiles = TxProfiles(edge)
        await iso15118_smart_charging(edge, sim, profiles)
        before = len(profiles.all())
        await start(sim, 2, "TAG-2")
        await wait_for(lambda: [d for d in profiles.all()[before:] if d["params"]["evseId"] == 1], timeout=10,
                       what="the CSMS's renegotiation")
        await wait_for(lambda: edge.load_manager.tracks[EVSE1].held.limit == 20.0, what="20 A held")
        before = len(profiles.all())
        assert (await car.charging_needs(sim, 1, departure=_soon(2), energy_wh=15_000)).status == "Accepted"
        limit = checked(await profiles.next_after(before, what="the TxProfile after the resent needs"), sim)
        assert limit == 20.0
        assert (await car.ev_charging_schedule(sim, 1, [limit])).status == "Accepted"


def test_a_car_schedule_is_read_against_the_site_s_limit_in_a_and_in_w():
    def schedule(unit: str, *limits: float, phases: int | None = None) -> dict:
        return {"charging_rate_unit": unit, "charging_schedule_period": [
            {"start_period": i * 900, "limit": limit, **({"number_phases": phases} if phases else {})}
            for i, limit in enumerate(limits)]}
    assert beyond_site_limit(schedule("A", 16, 10), 16.0, 3) is None
    assert "period 1" in beyond_site_limit(schedule("A", 16, 16.2), 16.0, 3)
    assert beyond_site_limit(schedule("W", 11040), 16.0, 3) is None          # 16 A x 230 V x 3
    assert beyond_site_limit(schedule("W", 3680, phases=1), 16.0, 3) is None  # 16 A x 230 V x 1
    assert "7360 W on 1 phases" in beyond_site_limit(schedule("W", 7360, phases=1), 16.0, 3)
    assert "not a number" in beyond_site_limit(schedule("A", float("nan")), 16.0, 3)


@given(st.floats(6, 80), st.integers(1, 3), st.lists(st.floats(0, 100), min_size=1, max_size=8),
       st.sampled_from(["A", "W"]))
def test_a_car_schedule_is_rejected_exactly_when_a_period_is_above_the_site_s_limit(limit, phases, amps, unit):
    """Whatever the car plans: within the site's limit (and its tolerance) it is accepted, a period above it is
    named, in A or in W (at 230 V over the profile's phases)."""
    scale = 230 * phases if unit == "W" else 1
    schedule = {"charging_rate_unit": unit, "charging_schedule_period": [
        {"start_period": i * 60, "limit": a * scale} for i, a in enumerate(amps)]}
    why = beyond_site_limit(schedule, limit, phases)
    above = [i for i, a in enumerate(amps) if a > limit + SCHEDULE_TOLERANCE_A + 1e-6]
    within = all(a <= limit + SCHEDULE_TOLERANCE_A - 1e-6 for a in amps)
    if within:
        assert why is None
    if above and all(a <= limit + SCHEDULE_TOLERANCE_A - 1e-6 for a in amps[:above[0]]):
        assert why is not None and why.startswith(f"period {above[0]} ")
