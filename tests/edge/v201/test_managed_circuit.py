"""A 2.0.1 station on a managed circuit (issue 19, the safety invariant). Load management
words its charging profiles for 1.6 stations only so far (edge/dlm sends them through
`Commands`), so a 2.0.1 station cannot take its limit: it must never be assumed steered.
Its maximum stays held in the allocation and the other cars get less, so the fuse holds
even when its car draws all it can. Real pieces: a pymodbus SDM630 reading the building
plus both cars, a simulated 1.6 charger and the simulated 2.0.1 station over WebSockets."""

from __future__ import annotations

import asyncio
import contextlib

from simulator.charge_point import SimulatedChargePoint
from simulator.meter import SimulatedMeter
from tests.edge.conftest import wait_for
from tests.edge.dlm.test_closed_loop import charge, config, offered
from tests.edge.v201.conftest import station

LIMIT, MAX, BASE = 40.0, 32.0, 2.0
STATION = "CS-201"
WIRING = {"A": (3, "RST", "L1"), STATION: (3, "RST", "L1")}


def station_draw(sim) -> tuple[float, ...]:
    """What the 2.0.1 station's car on EVSE 1 draws now, per phase."""
    sim.settle()
    return tuple(sim.connectors[1].meter.currents)


async def test_a_201_station_on_a_managed_circuit_keeps_its_maximum_held(make_edge):
    parts: dict = {}

    def grid() -> tuple[float, float, float]:
        """What the grid meter sees: the building, the 1.6 car and the 2.0.1 station's car (same phases)."""
        a, sim = parts.get("A"), parts.get(STATION)
        draw = [BASE] * 3
        if a is not None:
            draw = [d + c for d, c in zip(draw, a.connector(1).current)]
        if sim is not None:
            draw = [d + c for d, c in zip(draw, station_draw(sim))]
        return (draw[0], draw[1], draw[2])

    meter = SimulatedMeter(grid)
    port = await meter.start_tcp()
    extra, chargers = config(f'transport = "tcp"\nhost = "127.0.0.1"\nport = {port}', WIRING, limit=LIMIT)
    try:
        async with make_edge(extra=extra, chargers=chargers) as edge, station(edge, evses=1) as sim:
            dlm = edge.load_manager
            parts[STATION] = sim
            url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
            a = parts["A"] = SimulatedChargePoint("A", url, reconnect_delay=0.1, meter_interval=0.3,
                                                  ramp_seconds=0.2)
            task = asyncio.create_task(a.run())
            try:
                await a.wait_accepted()
                # The station's own driver starts a session there (a card the station knows from its local list):
                # its car draws what it likes, up to 32 A.
                await sim.plug_in(1)
                sim.authorized(sim.evses[1], {"id_token": "TAG-2", "type": "ISO14443"}, "Authorized")
                await charge(a, "TAG-OK")
                await wait_for(lambda: station_draw(sim)[0] >= MAX - 0.5, what="the 2.0.1 car at its maximum")
                await wait_for(lambda: dlm.chargers["A"].default_sent is not None, what="A steered")
                await wait_for(lambda: ("A", 1) in dlm.allocation.decisions and dlm.tracks.get(("A", 1)) is not None
                               and dlm.tracks[("A", 1)].transaction_id is not None, what="A's session managed")
                await wait_for(lambda: offered(a) <= LIMIT - MAX - BASE, what="A at what is left")

                dlm.evaluate()
                circuit = dlm.allocation.circuits["grid"]
                decision = dlm.allocation.decisions[(STATION, 1)]
                assert not sim.stored_profiles, "the 2.0.1 station took a profile: this test no longer holds it"
                assert decision.limit == 0.0 and "refused a charging profile" in decision.reason, decision
                assert all(p.reserved >= MAX for p in circuit.phases), circuit.phases
                # The 1.6 car gets at most what the held maximum and the building leave (the meter also counts
                # the 2.0.1 car's draw as the building's, so it may get nothing: the safe side); the fuse holds.
                assert dlm.allocation.decisions[("A", 1)].limit <= LIMIT - MAX - BASE + 1e-6
                assert offered(a) <= LIMIT - MAX - BASE + 1e-6
                assert all(p.allocated + p.reserved <= LIMIT + 1e-6 for p in circuit.phases)
                assert max(grid()) <= LIMIT + 1e-6
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await meter.stop()
