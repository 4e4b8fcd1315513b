"""The simulators' power cycle (the known fault: run() cancelled and called again reconnected without booting,
so a test could not power-cycle a station): against the real edge, over real WebSockets, both OCPP versions."""

from __future__ import annotations

import asyncio
import contextlib

from simulator import SimulatedChargePoint
from simulator.v201 import SimulatedStation
from tests.edge.conftest import PASSWORD
from tests.edge.v201.conftest import SITE_CHARGERS, STATION
from tests.edge.v201.test_device_model import poll


async def _stopped(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _completed(charger_id: str):
    return lambda s: [t for t in s.transactions(charger_id=charger_id) if t["state"] == "completed"]


async def test_a_201_station_power_cycled_while_stopped_boots_again_and_ends_its_transaction(make_edge):
    """A charging 2.0.1 station loses its power (run() cancelled), power_cycle(), run() again: it boots as after a
    power-up (a second BootNotification, reason PowerUp), its transaction ends PowerLoss (the edge stops the session
    with that reason), the car is still plugged in. A plain cancel and run() again is a blip: no boot."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", evses=2,
                               reconnect_delay=0.05, ramp_seconds=0.2)
        sim.device.put("AuthCtrlr", "LocalPreAuthorize", "true")
        sim.local_auth.remember("ISO14443:TAG-OK", "Accepted")
        task = asyncio.create_task(sim.run())
        try:
            await sim.wait_online()
            await sim.plug_in(1)
            assert await sim.present_token(1, "TAG-OK") == "Accepted"
            await sim.flush()
            await _stopped(task)                       # a blip: back without booting, the transaction on
            task = asyncio.create_task(sim.run())
            await sim.wait_online()
            assert sim._event_counts["boot"] == 1 and sim.evses[1].tx is not None

            await _stopped(task)                       # the power goes ...
            await sim.power_cycle()
            assert not sim.is_accepted() and sim.evses[1].tx is None
            task = asyncio.create_task(sim.run())     # ... and comes back
            await sim.wait_online()
            assert sim._event_counts["boot"] == 2 and sim.boot_request().reason == "PowerUp"
            [tx] = await poll(edge, _completed(STATION))
            assert tx["stop_reason"] == "PowerLoss"
            assert sim.evses[1].connector.car is not None
        finally:
            await _stopped(task)


async def test_a_201_station_power_cycled_while_running_reconnects_and_boots(make_edge):
    """power_cycle() while run() runs: the connection drops, the station reconnects by itself and boots again."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", evses=2,
                               reconnect_delay=0.05, ramp_seconds=0.2)
        task = asyncio.create_task(sim.run())
        try:
            await sim.wait_online()
            await sim.power_cycle()
            await sim.wait_event("boot", count=2)
            await sim.wait_online()
            assert sim.registration == "Accepted"
        finally:
            await _stopped(task)


async def test_a_16_charger_power_cycled_while_stopped_boots_again_and_stops_its_transaction(make_edge):
    """The same for the 1.6 simulator: a blip resumes; a power cycle boots again and the transaction stops
    PowerLoss at the edge."""
    async with make_edge() as edge:
        sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                   reconnect_delay=0.05, ramp_seconds=0.2)
        task = asyncio.create_task(sim.run())
        try:
            await sim.wait_online()
            await sim.plug_in(1)
            await sim.start_transaction(1, "TAG-OK")
            await _stopped(task)
            task = asyncio.create_task(sim.run())
            await sim.wait_online()
            assert sim._event_counts["boot"] == 1 and sim.connectors[1].transaction is not None

            await _stopped(task)
            await sim.power_cycle()
            task = asyncio.create_task(sim.run())
            await sim.wait_online()
            assert sim._event_counts["boot"] == 2 and sim.connectors[1].transaction is None
            [tx] = await poll(edge, _completed("CP-1"))
            assert tx["stop_reason"] == "PowerLoss"
        finally:
            await _stopped(task)
