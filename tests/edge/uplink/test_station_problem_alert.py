"""A 2.0.1 station's NotifyEvent that needs a look reaches the cloud as `alert.station_problem`: the real
edge, the simulated 2.0.1 station over real WebSockets, a real Mosquitto and the test cloud's subscriber.
Before, the edge's `station.problem` event stayed on the edge's bus."""

from __future__ import annotations

import json

from contract.v1 import parse
from simulator.v201 import services
from tests.edge.uplink.conftest import drained, eventually
from tests.edge.v201.conftest import STATION, station
from tests.stations import V201_CHARGER


async def test_a_station_problem_reaches_the_cloud_as_an_alert_and_nothing_else_does(make_uplinked_edge, cloud):
    def problems() -> list[dict]:
        return [m for m in cloud.up_messages("alert") if m["type"] == "alert.station_problem"]
    async with make_uplinked_edge(extra=V201_CHARGER) as edge:
        async with station(edge) as sim:
            await sim.wait_online()
            # Not problems: a plain change, and a problem that says it cleared.
            await services.notify_event(sim, "Connector", "AvailabilityState", "Occupied", evse_id=1)
            await services.notify_event(sim, "EVSE", "Problem", "true", evse_id=2, cleared=True)
            # A problem: the RCD of EVSE 1 tripped.
            await services.notify_event(sim, "RCD", "Tripped", "true", evse_id=1, tech_info="residual current 31 mA")
            [alert] = await eventually(problems, what="the station problem at the cloud")
            await drained(edge)
    # Sent in order after the two that are no problem: had they been alerted, they would be here too.
    assert len(problems()) == 1
    body = alert["body"]
    assert body["charger_id"] == STATION
    assert (body["component"], body["variable"], body["actual_value"], body["evse_id"]) == ("RCD", "Tripped", "true", 1)
    assert body["problem"] is True and body["cleared"] is False
    assert body["tech_info"] == "residual current 31 mA"
    for topic, payload, _ in cloud.received("/up/alert"):
        parse(topic, json.dumps(payload).encode())
