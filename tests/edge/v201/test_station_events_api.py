"""GET /api/v1/chargers/{id}/events and /smart-charging: a 2.0.1 station's NotifyEvent entries, its
ReportChargingProfiles and its cars' schedules as the edge keeps them (bounded, in memory), read through the
local API with its token: the real edge and the simulated 2.0.1 station over real WebSockets. Before, they were
readable only from inside the edge's process."""

from __future__ import annotations

from hypothesis import given, strategies as st
from ocpp.v201 import call

from edge.ocpp.v201.services import KEEP_EVENTS
from edge.stations.model import ChargingLimit, LimitPurpose
from edge.web.api.chargers import events_page
from simulator.v201 import services
from tests.edge.conftest import api_call
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.v201.test_services import eventually as wait_for_async


def _entry(n: int) -> dict:
    return {"event_id": n, "timestamp": "2026-12-07T10:00:00Z", "trigger": "Delta", "actual_value": str(n),
            "event_notification_type": "HardWiredNotification", "component": {"name": "Connector", "evse": {"id": 1}},
            "variable": {"name": "AvailabilityState"}}


async def test_a_stations_events_are_read_newest_first_problems_apart_paged_and_bounded(make_edge):
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        empty = await api_call(edge, "GET", f"/chargers/{STATION}/events")
        assert (empty["events"], empty["total"]) == ([], 0)
        await services.notify_event(sim, "Connector", "AvailabilityState", "Occupied", evse_id=1)
        await services.notify_event(sim, "RCD", "Tripped", "true", evse_id=2, tech_info="31 mA")
        await services.notify_event(sim, "RCD", "Tripped", "false", evse_id=2, cleared=True)

        body = await api_call(edge, "GET", f"/chargers/{STATION}/events")
        assert body["charger_id"] == STATION and body["total"] == 3
        assert [(e["component"], e["actual_value"], e["problem"]) for e in body["events"]] == [
            ("RCD", "false", False), ("RCD", "true", True), ("Connector", "Occupied", False)]
        assert body["events"][1]["evse_id"] == 2 and body["events"][1]["tech_info"] == "31 mA"
        problems = await api_call(edge, "GET", f"/chargers/{STATION}/events?problems=1")
        assert [(e["variable"], e["trigger"]) for e in problems["events"]] == [("Tripped", "Delta")]
        page = await api_call(edge, "GET", f"/chargers/{STATION}/events?limit=1&offset=1")
        assert [e["actual_value"] for e in page["events"]] == ["true"]

        # Three NotifyEvents of 100 entries: the newest KEEP_EVENTS are kept, the oldest went.
        for part in range(3):
            await sim.link.send(call.NotifyEvent(generated_at="2026-12-07T10:00:00Z", seq_no=part, tbc=part < 2,
                                                 event_data=[_entry(part * 100 + i) for i in range(100)]))
        newest = await api_call(edge, "GET", f"/chargers/{STATION}/events?limit={KEEP_EVENTS}")
        assert newest["total"] == KEEP_EVENTS == len(newest["events"])
        assert newest["events"][0]["actual_value"] == "299" and newest["events"][-1]["actual_value"] == "100"

        # The 1.6 charger has none; an unknown id and a bad query are refused, and the token is needed.
        assert (await api_call(edge, "GET", "/chargers/CP-1/events"))["events"] == []
        await api_call(edge, "GET", "/chargers/NOPE/events", expect=404)
        await api_call(edge, "GET", f"/chargers/{STATION}/events?limit=0", expect=400)
        await api_call(edge, "GET", f"/chargers/{STATION}/events?problems=yes", expect=400)
        await api_call(edge, "GET", f"/chargers/{STATION}/events", token="wrong", expect=401)


async def test_a_stations_reported_profiles_and_its_cars_schedules_are_read_through_the_api(make_edge):
    """GET /api/v1/chargers/{id}/smart-charging: K09's ReportChargingProfiles per request and K15's
    NotifyEVChargingSchedule, newest first, as the edge keeps them."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        assert (await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging"))["reports"] == []
        control = edge.control.adapter(STATION)
        limit = ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0, evse=1, phases=3)
        assert (await control.set_charging_limit(STATION, limit, actor="t", reason="r")).outcome == "ok"
        for request_id in (501, 502):
            asked = await control.charging_profiles(STATION, request_id, actor="operator", reason="what it holds")
            assert asked.outcome == "ok", asked
        await services.ev_charging_schedule(sim, 1, [16.0, 8.0])
        await services.ev_charging_schedule(sim, 1, [6.0])

        async def both_reported() -> dict | None:
            body = await api_call(edge, "GET", f"/chargers/{STATION}/smart-charging")
            return body if [r["complete"] for r in body["reports"]] == [True, True] else None
        body = await wait_for_async(both_reported, "both reports")
        assert [r["request_id"] for r in body["reports"]] == [502, 501]
        assert [(p["id"], p["charging_profile_purpose"], p["evse_id"]) for p in body["reports"][0]["profiles"]] == [
            (7, "TxDefaultProfile", 1)]
        assert [[p["limit"] for p in s["charging_schedule"]["charging_schedule_period"]]
                for s in body["car_schedules"]] == [[6.0], [16.0, 8.0]]
        assert body["kept_at_most"]["reports"] > 0
        await api_call(edge, "GET", "/chargers/NOPE/smart-charging", expect=404)


KEPT = [{"problem": n % 3 == 0, "n": n} for n in range(7)]


@given(st.dictionaries(st.sampled_from(["limit", "offset", "problems", "other"]),
                       st.one_of(st.text(max_size=6), st.integers(-5, 400).map(str)), max_size=4))
def test_any_query_gives_a_page_or_says_what_is_wrong(query):
    """The query string is the boundary: any one gives a page within the asked bounds, newest first, or a
    ValueError (400) that says what is wrong; never another error."""
    try:
        page = events_page(KEPT, query)
    except ValueError as exc:
        assert str(exc)
        return
    assert 1 <= page["limit"] <= KEEP_EVENTS and page["offset"] >= 0 and len(page["events"]) <= page["limit"]
    numbers = [e["n"] for e in page["events"]]
    assert numbers == sorted(numbers, reverse=True)
    if query.get("problems") == "1":
        assert all(e["problem"] for e in page["events"])
