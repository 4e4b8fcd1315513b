"""OCPP 2.0.1 blocks B (provisioning) and G (availability) at the edge: the simulated 2.0.1
station (simulator.v201) against the real edge over real WebSockets, translated into the
same registry, journal, events and `edgectl chargers` as a 1.6 charger."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.v201 import call

from edge.journal import Store
from edge.ocpp.v16.session import ChargerSession
from edge.ocpp.v201.session import Ocpp201Session
from tests.edge.conftest import api_call, simulated, site_toml
from tests.edge.test_cli import edgectl
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station


async def next_event(events: asyncio.Queue, kind: str, charger_id: str, timeout: float = 10, **data: Any):
    """The next event of `kind` from `charger_id` whose data has `data`."""
    async def until():
        while True:
            event = await events.get()
            if event.kind == kind and event.charger_id == charger_id and \
                    all(event.data.get(k) == v for k, v in data.items()):
                return event
    return await asyncio.wait_for(until(), timeout)


async def connector_statuses(edge, charger_id: str) -> dict[int, str]:
    return {row["connector_id"]: row["status"] for row in await edge.journal.read(Store.connectors, charger_id)}


async def test_TC_B_01_CSMS_cold_boot_accepted(make_edge):
    """B01: a configured 2.0.1 station's BootNotification is Accepted with the site's heartbeat interval;
    its boot info is stored as a 1.6 charger's is, it is ready, and each EVSE's status reaches the journal."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with station(edge) as sim:
            boot = await sim.wait_event("boot")
            assert (boot["status"], boot["interval"]) == ("Accepted", edge.config.ocpp.heartbeat_interval)
            booted = await next_event(events, "charger.booted", STATION)
            assert (booted.data["vendor"], booted.data["model"], booted.data["ocpp"]) == \
                ("SimVendor", "SimStation201", "2.0.1")
            await next_event(events, "charger.ready", STATION)
            await next_event(events, "connector.status", STATION, connector_id=2)
            [row] = [r for r in await edge.journal.read(Store.chargers) if r["id"] == STATION]
            assert (row["registration"], row["vendor"], row["model"], row["firmware_version"]) == \
                ("accepted", "SimVendor", "SimStation201", "2.0.1-sim")
            assert await connector_statuses(edge, STATION) == {1: "Available", 2: "Available"}
            assert isinstance(edge.ocpp.sessions[STATION], Ocpp201Session)
            # Heartbeat (G): the edge's time, once the station is online (its boot's follow-ups done).
            await sim.wait_online()
            beat = await sim.send(call.Heartbeat())
            assert beat.current_time.startswith(str(edge.clock.now().year))


async def test_TC_B_02_CSMS_pending_until_adopted(make_edge):
    """B02 with the site's adoption: an unknown station is Pending (what it may send then:
    test_boundary.py); adopting it triggers a BootNotification (the 1.6 TriggerMessage worded as 2.0.1's) that is Accepted."""
    async with make_edge(unknown="pending", chargers=SITE_CHARGERS) as edge:
        async with station(edge, "NEW-201", accepted=False) as sim:
            assert (await sim.wait_event("boot"))["status"] == "Pending"
            assert not edge.directory.is_known("NEW-201")

            result = await api_call(edge, "POST", "/chargers/NEW-201/adopt")
            assert result["adopted"] == "NEW-201"
            assert result["trigger"]["outcome"] == "ok", result
            assert (await sim.wait_event("boot", count=2))["status"] == "Accepted"
            await sim.wait_online()
            assert (await sim.send(call.Heartbeat())).current_time
            [row] = [r for r in await edge.journal.read(Store.chargers) if r["id"] == "NEW-201"]
            assert row["registration"] == "accepted"


async def test_unknown_station_rejected_stores_nothing_but_its_boot(make_edge):
    """B03 from the CSMS side: under unknown_chargers = "reject" a stranger's boot is Rejected, and
    nothing of it reaches the connectors or the events."""
    async with make_edge(unknown="reject", chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with station(edge, "STRANGER-201", accepted=False) as sim:
            boot = await sim.wait_event("boot")
            assert boot["status"] == "Rejected" and boot["interval"] > 0
        [row] = [r for r in await edge.journal.read(Store.chargers) if r["id"] == "STRANGER-201"]
        assert (row["registration"], row["vendor"]) == ("rejected", "SimVendor")
        assert await connector_statuses(edge, "STRANGER-201") == {}
        assert all(e.charger_id != "STRANGER-201" for e in _drain(events))


def _drain(events) -> list:
    drained = []
    while not events.queue.empty():
        drained.append(events.queue.get_nowait())
    return drained


async def test_G01_status_changes_reach_journal_events_and_edgectl(make_edge, tmp_path, capsys):
    """G01 (TC_G_01/02 from the CSMS side): Available -> Occupied -> Faulted -> Available per EVSE
    become the site's statuses (Occupied reads Preparing until a TransactionEvent says more), in the
    journal, in connector.status events, in the hardware log for a fault and in `edgectl chargers`."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path, chargers=SITE_CHARGERS).replace("[api]\nport = 0",
                                                                f"[api]\nport = {edge.api.bound_port}"))
        events = edge.bus.subscribe()
        async with station(edge) as sim:
            await next_event(events, "connector.status", STATION, connector_id=2)

            await sim.plug_in(2)
            occupied = await next_event(events, "connector.status", STATION, connector_id=2)
            assert (occupied.data["status"], occupied.data["ocpp_status"]) == ("Preparing", "Occupied")
            assert await connector_statuses(edge, STATION) == {1: "Available", 2: "Preparing"}

            await sim.report_fault(1, True, "RCD tripped")
            faulted = await next_event(events, "connector.status", STATION, connector_id=1)
            assert (faulted.data["status"], faulted.data["error_code"]) == ("Faulted", "OtherError")
            [fault] = await edge.journal.read(Store.log, "hardware", STATION)
            assert (fault["connector_id"], fault["status"]) == (1, "Faulted")

            capsys.readouterr()
            assert await edgectl(tmp_path, "chargers") == 0
            line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(STATION))
            assert "1:Faulted" in line and "2:Preparing" in line, line

            await sim.report_fault(1, False)
            await sim.unplug(2)
            await next_event(events, "connector.status", STATION, connector_id=2, status="Available")
            assert await connector_statuses(edge, STATION) == {1: "Available", 2: "Available"}


async def test_a_16_charger_and_a_201_station_side_by_side(make_edge):
    """One registry of stations: a 1.6 charger and a 2.0.1 station connected at once, each served by
    its version's session, both statuses in the same journal and events."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with simulated(edge) as cp, station(edge) as sim:
            await next_event(events, "connector.status", STATION, connector_id=2)
            session16, session201 = edge.ocpp.sessions["CP-1"], edge.ocpp.sessions[STATION]
            assert type(session16) is ChargerSession and type(session201) is Ocpp201Session
            assert session16.ready and session201.ready

            await cp.plug_in(1)
            await sim.plug_in(1)
            await next_event(events, "connector.status", "CP-1", connector_id=1, status="Preparing")
            await next_event(events, "connector.status", STATION, connector_id=1, status="Preparing")
            assert (await connector_statuses(edge, "CP-1"))[1] == "Preparing"
            assert (await connector_statuses(edge, STATION))[1] == "Preparing"


async def test_requests_without_a_201_wording_are_refused_not_retried(make_edge):
    """A request the core still words in 1.6 only (here Reset) is not sent to a 2.0.1 station: the
    actions log says NotSupported and the station stays connected."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge):
            result = await edge.commands.send(STATION, "Reset", {"type": "Hard"}, actor="tester", reason="test")
            assert result.outcome == "error" and result.response.startswith("NotSupported"), result
            assert STATION in edge.ocpp.sessions
            trigger = await edge.commands.send(STATION, "TriggerMessage", {"requestedMessage": "Heartbeat"},
                                               actor="tester", reason="test")
            assert (trigger.outcome, trigger.response) == ("ok", {"status": "Accepted"})
