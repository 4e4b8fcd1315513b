"""OCA OCPP 2.0.1 test cases of block G (Availability), CSMS side: ChangeAvailability for the station and per
EVSE from the site (edge.control, as access enforcement and the operator ask), StatusNotification per EVSE
and connector into the site's connector status, Heartbeat and the connection status, against the simulated
2.0.1 station (simulator.v201) over real WebSockets.

Not applicable: TC_G_07/G_08/G_17 (ChangeAvailability of one connector within an EVSE): the site addresses
EVSEs (its "connector" is the EVSE, one connector each as far as the core knows), so it never sends
evse.connectorId; the EVSE-level cases G_03/G_04/G_11 are what it sends instead. TC_G_20 (NotifyEvent of a
plug retention lock problem) is tests/edge/v201/test_services.py's.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from ocpp.v201 import call

from edge.journal import Store
from edge.stations.model import Availability
from tests.edge.conftest import wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station as _station

INOPERATIVE, OPERATIVE = Availability.INOPERATIVE, Availability.OPERATIVE


@contextlib.asynccontextmanager
async def station(edge, **kwargs):
    async with _station(edge, **kwargs) as sim:
        await sim.wait_online()
        yield sim


async def connector_status(edge, evse: int) -> str | None:
    rows = await edge.journal.read(Store.connectors, STATION)
    return next((r["status"] for r in rows if r["connector_id"] == evse), None)


async def until_status(edge, evse: int, expected: str, timeout: float = 5.0) -> None:
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (status := await connector_status(edge, evse)) != expected:
        if loop.time() > deadline:
            raise AssertionError(f"EVSE {evse} is {status}, not {expected}")
        await asyncio.sleep(0.02)


async def change(edge, evse: int, availability: Availability):
    return await edge.control.change_availability(STATION, evse, availability, actor="test", reason="OCA G")


async def test_TC_G_03_and_TC_G_04_CSMS_one_evse_inoperative_then_operative(make_edge):
    """G03: ChangeAvailability with evse.id (no connectorId) Inoperative, then Operative: Accepted; the
    station's StatusNotification Unavailable, then Available, is the site's status of that EVSE only."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            off = await change(edge, 1, INOPERATIVE)
            assert (off.outcome, off.request, off.response) == \
                ("ok", {"operationalStatus": "Inoperative", "evse": {"id": 1}}, {"status": "Accepted"})
            await until_status(edge, 1, "Unavailable")
            assert await connector_status(edge, 2) == "Available" and sim.evses[2].connector.operative
            on = await change(edge, 1, OPERATIVE)
            assert (on.outcome, on.request) == ("ok", {"operationalStatus": "Operative", "evse": {"id": 1}})
            await until_status(edge, 1, "Available")


async def test_TC_G_05_and_TC_G_06_CSMS_the_whole_station_inoperative_then_operative(make_edge):
    """G04: ChangeAvailability without evse Inoperative, then Operative: every EVSE Unavailable, then
    Available, at the site."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge):
            off = await change(edge, 0, INOPERATIVE)
            assert (off.outcome, off.request, off.response) == \
                ("ok", {"operationalStatus": "Inoperative"}, {"status": "Accepted"})
            for evse in (1, 2):
                await until_status(edge, evse, "Unavailable")
            on = await change(edge, 0, OPERATIVE)
            assert (on.outcome, on.request) == ("ok", {"operationalStatus": "Operative"})
            for evse in (1, 2):
                await until_status(edge, evse, "Available")


async def test_TC_G_11_and_TC_G_14_CSMS_inoperative_during_a_transaction_is_scheduled(make_edge):
    """G03.FR.05/G04.FR.06: during a transaction the station answers Scheduled (an answer the CSMS takes as
    done, not refused); the EVSE stays in use until the transaction ends, then reads Unavailable, the session
    itself untouched (stopped by the driver, with its energy)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("AuthCtrlr", "LocalPreAuthorize", "true")
            await sim.plug_in(1)
            assert await sim.present_token(1, "TAG-OK") == "Accepted"
            await sim.wait_event("transaction_started")
            await sim.flush()
            for evse in (1, 0):                          # TC_G_11 (the EVSE), TC_G_14 (the station)
                result = await change(edge, evse, INOPERATIVE)
                assert (result.outcome, result.response) == ("ok", {"status": "Scheduled"}), result
            assert sim.evses[1].tx is not None            # charging goes on
            await until_status(edge, 2, "Unavailable")     # the idle EVSE at once (station-wide request)
            assert await connector_status(edge, 1) != "Unavailable"
            await sim.stop(1)
            await sim.wait_event("transaction_ended")
            await sim.unplug(1)
            await sim.flush()
            await until_status(edge, 1, "Unavailable")
            [tx] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert (tx["state"], tx["stop_reason"]) == ("completed", "Local") and tx["meter_stop"] >= tx["meter_start"]


async def test_G01_status_per_evse_and_connector_and_G02_heartbeat_and_connection(make_edge):
    """G01: every EVSE's StatusNotification (Available, Occupied, Faulted, Available) is its site status, event
    and hardware-log entry; G02: a Heartbeat is answered with the edge's time; the station shows online, then
    offline when its connection drops, and online again when it comes back (as a 1.6 charger does)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.plug_in(2)
            await until_status(edge, 2, "Preparing")
            assert await connector_status(edge, 1) == "Available"
            await sim.report_fault(1, True, "RCD tripped")
            await until_status(edge, 1, "Faulted")
            await sim.report_fault(1, False)
            await until_status(edge, 1, "Available")
            faults = await edge.journal.read(Store.log, "hardware", STATION, 20)
            assert any("Faulted" in str(row.values()) for row in faults)
            before = datetime.now(timezone.utc)
            beat = await sim.send(call.Heartbeat())
            at = datetime.fromisoformat(beat.current_time.replace("Z", "+00:00"))
            assert abs((at - before).total_seconds()) < 5
            assert edge.control.is_connected(STATION)
        await wait_for(lambda: not edge.control.is_connected(STATION), what="offline")
        async with station(edge):
            assert edge.control.is_connected(STATION) and edge.control.is_ready(STATION)
