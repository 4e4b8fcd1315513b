"""GET /api/v1/chargers/{id}/events and /smart-charging: a 2.0.1 station's NotifyEvent entries (bounded, in the
journal), its ReportChargingProfiles and its cars' schedules (bounded, in memory) as the edge keeps them, read
through the local API with its token: the real edge and the simulated 2.0.1 station over real WebSockets. Before,
they were readable only from inside the edge's process, and the events were forgotten at a restart."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from ocpp.v201 import call

from edge.journal.store import Store, connect as journal_connect
from edge.ocpp.v201.services import KEEP_EVENTS
from edge.ocpp.v201.station_events import entry_of
from edge.stations.model import ChargingLimit, LimitPurpose
from edge.web.api.chargers import events_page
from simulator.v201 import services
from tests.edge.conftest import api_call
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.conftest import eventually as wait_for_async


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


async def test_a_stations_events_read_the_same_after_an_edge_restart_and_a_resent_one_is_kept_once(make_edge):
    """The journal keeps them: after the edge restarts, GET /events answers exactly as before it stopped (the
    newest KEEP_EVENTS, newest first, problems apart), with no station connected. A NotifyEvent the station sends
    again (its answer lost: the same generatedAt, seqNo and eventIds) is kept once."""
    queries = ["", "?problems=1", f"?limit={KEEP_EVENTS}", "?limit=3&offset=2"]
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        for part in range(3):
            await sim.link.send(call.NotifyEvent(generated_at="2026-12-07T10:00:00Z", seq_no=part, tbc=part < 2,
                                                 event_data=[_entry(part * 100 + i) for i in range(100)]))
        await services.notify_event(sim, "Connector", "AvailabilityState", "Occupied", evse_id=1)
        tripped = call.NotifyEvent(generated_at="2026-12-07T10:05:00Z", seq_no=0, event_data=[
            {**_entry(900), "component": {"name": "RCD", "evse": {"id": 2}}, "variable": {"name": "Tripped"},
             "actual_value": "true", "tech_info": "31 mA", "transaction_id": "tx-9"}])
        await sim.link.send(tripped)
        await sim.link.send(tripped)            # sent again: its answer was lost on the way
        before = {q: await api_call(edge, "GET", f"/chargers/{STATION}/events{q}") for q in queries}
    assert before[""]["total"] == KEEP_EVENTS
    assert [(e["component"], e["actual_value"], e["tech_info"], e["transaction_id"])
            for e in before[""]["events"][:3]] == [("RCD", "true", "31 mA", "tx-9"),
                                                   ("Connector", "Occupied", None, None),
                                                   ("Connector", "299", None, None)]
    assert before["?problems=1"]["total"] == 1

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        after = {q: await api_call(edge, "GET", f"/chargers/{STATION}/events{q}") for q in queries}
    assert after == before


ITEMS = st.fixed_dictionaries(
    {"event_id": st.integers(0, 2**31 - 1), "timestamp": st.just("2026-12-07T10:00:00Z"),
     "trigger": st.sampled_from(["Alerting", "Delta", "Periodic"]), "actual_value": st.text(max_size=120),
     "event_notification_type": st.just("HardWiredNotification"),
     "component": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=50)},
                                        optional={"evse": st.fixed_dictionaries({"id": st.integers(0, 1000)})}),
     "variable": st.fixed_dictionaries({"name": st.sampled_from(["Problem", "Tripped", "AvailabilityState"])})},
    optional={"cleared": st.booleans(), "tech_code": st.text(max_size=50), "tech_info": st.text(max_size=500),
              "transaction_id": st.text(min_size=1, max_size=36)})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(ITEMS, max_size=8)), max_size=12), st.integers(1, 20))
def test_any_events_are_kept_as_received_newest_keep_once_each(tmp_path, messages, keep):
    """NotifyEvents cross the boundary from the station: whatever entries (texts, EVSEs, resent messages), the
    journal gives back what the edge made of them, in the order received, each message's entry once (a repeat of
    generatedAt, seqNo and eventId is told as such), the newest `keep` only: real SQLite."""
    path = tmp_path / f"events-{keep}-{len(messages)}.sqlite"
    path.unlink(missing_ok=True)
    store = Store(journal_connect(str(path)))
    try:
        model: list[dict] = []               # what the journal should hold, oldest first
        for seq_no, items in messages:
            entries = [entry_of(item, "2026-12-07T10:00:00Z", seq_no, "2026-12-07T10:00:01Z") for item in items]
            store.conn.execute("BEGIN")
            new = store.add_notified_events(STATION, entries, keep)
            store.conn.execute("COMMIT")
            for entry, was_new in zip(entries, new):
                repeat = any((e["seq_no"], e["event_id"]) == (entry["seq_no"], entry["event_id"]) for e in model)
                assert was_new == (not repeat)
                if not repeat:
                    model.append(entry)
            if any(new):
                model = model[-keep:]
        assert store.notified_events(STATION) == model
    finally:
        store.conn.close()
