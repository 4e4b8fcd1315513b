"""Observation 2 of issue 14: offline is not inactivity. A simulated charger
loses its link mid-session (the same charger, its meter and queue intact),
time is compressed on a manual clock, and it comes back with its queued
StopTransaction. The edge keeps the charger's real meterStop; when the
edge did close the session (after the much longer offline limit), the real
stop or late values correct the close, kept as history, and
transaction.corrected is published after the commit."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from edge.clock import ManualClock
from edge.journal import Store
from simulator.charge_point import SimulatedChargePoint
from tests.edge.cdr.helpers import START, send_meter_values, sim_clock
from tests.edge.conftest import PASSWORD, wait_for

TIMEOUTS = '''
[session_timeouts]
finish_after_inactivity = 120
finish_after_offline = {offline}
'''


class Link:
    """The simulated charger's network: cut and restored, its state kept across."""

    def __init__(self, edge: Any, clock: ManualClock):
        self.sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                        connectors=2, reconnect_delay=0.1, **sim_clock(clock))
        self.edge = edge
        self.task: asyncio.Task | None = None

    async def up(self) -> None:
        self.task = asyncio.create_task(self.sim.run())
        await self.sim.wait_online()

    async def down(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await wait_for(lambda: "CP-1" in self.edge.session_watch._offline, what="the edge to see the outage")


@contextlib.asynccontextmanager
async def link(edge: Any, clock: ManualClock) -> AsyncIterator[Link]:
    net = Link(edge, clock)
    await net.up()
    try:
        yield net
    finally:
        if net.task is not None and not net.task.done():
            net.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await net.task


async def session_with_outage(edge: Any, clock: ManualClock, net: Link, offline_minutes: float) -> int:
    """A car charges 10 min while online, then the LAN is down for `offline_minutes` while it charges on."""
    sim = net.sim
    await sim.plug_in(1, car_max_current=16, car_phases=1)         # 3.7 kW
    tx = await sim.start_transaction(1, "TAG-OK")
    clock.advance(600)
    await send_meter_values(sim)
    await wait_for(lambda: edge.session_watch.running[tx].register_wh > 0, what="the meter values")
    await net.down()
    for _ in range(int(offline_minutes // 30)):
        clock.advance(30 * 60)
        await edge.session_watch.check()
    return tx


async def test_a_charger_offline_longer_than_the_inactivity_limit_is_billed_its_real_stop(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TIMEOUTS.format(offline=10080)) as edge:
        async with link(edge, clock) as net:
            tx = await session_with_outage(edge, clock, net, offline_minutes=180)   # > 120 min of "inactivity"
            assert tx in edge.sessions.active(), "closed for inactivity while the charger was disconnected"
            await net.sim.stop_transaction(1, "Local")              # queued: the charger is offline
            await net.up()
            await net.sim.flush()
            await wait_for(lambda: tx not in edge.sessions.active(), what="the queued stop")
            [row] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == tx]
            meter = net.sim.connector(1).energy_wh
    assert row["meter_stop"] == int(meter) and row["closed_by"] == "charger" and row["edge_stop"] is None
    assert row["meter_stop"] - row["meter_start"] > 10_000          # 3 h 10 min at 3.7 kW, not the first 10 min


async def test_the_real_stop_after_the_offline_limit_corrects_the_edges_close(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TIMEOUTS.format(offline=120)) as edge:
        async with link(edge, clock) as net:
            tx = await session_with_outage(edge, clock, net, offline_minutes=150)
            assert tx not in edge.sessions.active()                 # closed after the offline limit
            [closed] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == tx]
            assert closed["edge_stop"].startswith("closed after the offline limit")

            seen: list[tuple[dict, list]] = []
            events = edge.bus.subscribe()

            async def corrected() -> None:
                while True:
                    event = await events.get()
                    if event.kind == "transaction.corrected":
                        # Published after the commit: the journal has the correction already.
                        seen.append((event.data, await edge.journal.read(Store.transaction_corrections, tx)))
                        return
            waiter = asyncio.create_task(corrected())
            await net.sim.stop_transaction(1, "EVDisconnected")     # queued while offline
            await net.up()
            await net.sim.flush()
            await asyncio.wait_for(waiter, 10)
            [row] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == tx]
            history = await edge.journal.read(Store.transaction_corrections, tx)
            meter = int(net.sim.connector(1).energy_wh)
    [(data, at_event)] = seen
    assert data == {"transaction_id": tx, "why": "late StopTransaction"} and len(at_event) == 1
    assert (row["meter_stop"], row["stop_reason"], row["closed_by"]) == (meter, "EVDisconnected", "charger")
    assert row["edge_stop"] == closed["edge_stop"] and row["corrected"].startswith("corrected by the charger's late")
    [kept] = history
    assert (kept["meter_stop_before"], kept["stop_time_before"], kept["stop_reason_before"]) == (
        closed["meter_stop"], closed["stop_time"], "Other")
    assert (kept["meter_stop"], kept["stop_reason"]) == (meter, "EVDisconnected")
    assert meter > closed["meter_stop"]


async def test_late_meter_values_of_a_closed_session_are_kept_and_correct_it(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TIMEOUTS.format(offline=60)) as edge:
        async with link(edge, clock) as net:
            tx = await session_with_outage(edge, clock, net, offline_minutes=60)
            assert tx not in edge.sessions.active()
            [closed] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == tx]
            events = edge.bus.subscribe()
            await net.up()                                          # still charging: it reports its meter
            await send_meter_values(net.sim)

            async def corrected() -> dict:
                while True:
                    event = await events.get()
                    if event.kind == "transaction.corrected":
                        return event.data
            data = await asyncio.wait_for(corrected(), 10)
            [row] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == tx]
            kept = await edge.journal.read(Store.samples, transaction_id=tx)
            meter = int(net.sim.connector(1).energy_wh)
    assert data == {"transaction_id": tx, "why": "late MeterValues"}
    assert row["meter_stop"] == meter > closed["meter_stop"] and row["closed_by"] == "edge"
    assert int(max(s["value"] for s in kept if s["measurand"] == "Energy.Active.Import.Register")) == meter
