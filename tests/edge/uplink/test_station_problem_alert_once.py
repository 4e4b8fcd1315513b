"""A 2.0.1 station's problem reaches the cloud as `alert.station_problem` exactly once: not twice when the station
sends its NotifyEvent again (its answer lost), not again when the edge restarts and reads its kept events back,
not again when the station sends it once more after that restart (the journal, not memory, says it is known).
The real edge, the simulated 2.0.1 station over real WebSockets, a real Mosquitto and the test cloud."""

from __future__ import annotations

from ocpp.v201 import call

from simulator.v201 import services
from tests.edge.conftest import api_call
from tests.edge.uplink.conftest import drained, eventually
from tests.edge.v201.conftest import STATION, station
from tests.stations import V201_CHARGER


async def test_a_problem_sent_twice_and_an_edge_restart_alert_the_cloud_once(make_uplinked_edge, cloud):
    def problems() -> list[dict]:
        return [m for m in cloud.up_messages("alert") if m["type"] == "alert.station_problem"]
    tripped = call.NotifyEvent(generated_at="2026-12-07T10:05:00Z", seq_no=0, event_data=[{
        "event_id": 71, "timestamp": "2026-12-07T10:04:59Z", "trigger": "Delta", "actual_value": "true",
        "event_notification_type": "HardWiredNotification", "component": {"name": "RCD", "evse": {"id": 1}},
        "variable": {"name": "Tripped"}, "tech_info": "residual current 31 mA"}])
    async with make_uplinked_edge(extra=V201_CHARGER) as edge:
        async with station(edge) as sim:
            await sim.wait_online()
            await sim.link.send(tripped)
            await sim.link.send(tripped)        # the same message again: its answer was lost on the way
            # A later plain event: once it is at the cloud's side of the outbox, so would a second alert be.
            await services.notify_event(sim, "Connector", "AvailabilityState", "Occupied", evse_id=1)
            await eventually(problems, what="the station problem at the cloud")
            await drained(edge)
    assert len(problems()) == 1

    async with make_uplinked_edge(extra=V201_CHARGER) as edge:
        async with station(edge) as sim:
            await sim.wait_online()
            kept = await api_call(edge, "GET", f"/chargers/{STATION}/events?problems=1")
            assert [(e["component"], e["event_id"]) for e in kept["events"]] == [("RCD", 71)]
            await sim.link.send(tripped)        # sent again across the restart: its answer was lost before it
            # Something alerted after the restart reaches the cloud: had the resent one gone again, it would be first.
            await services.notify_event(sim, "EVSE", "Problem", "true", evse_id=2)
            await eventually(lambda: len(problems()) >= 2, what="the new problem at the cloud")
            await drained(edge)
    assert [(p["body"]["component"], p["body"]["evse_id"]) for p in problems()] == [("RCD", 1), ("EVSE", 2)]
    async with make_uplinked_edge(extra=V201_CHARGER) as edge:
        kept = await api_call(edge, "GET", f"/chargers/{STATION}/events?problems=1")
    # (The simulated station numbers its own events: the EVSE problem's eventId depends on what it sent before.)
    assert [(e["component"], e["evse_id"]) for e in kept["events"]] == [("EVSE", 2), ("RCD", 1)]
