"""Observation 1 of issue 14 over real OCPP frames: a refused start must not
become a ghost that locks its token out site-wide. The chargers here behave
like real ones: a transaction refused at the start is dropped without a
StopTransaction, and a RemoteStopTransaction for it is Rejected."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import call, call_result
from websockets.asyncio.client import connect

from edge.clock import ManualClock
from edge.journal import Store
from tests.edge.cdr.helpers import START
from tests.edge.conftest import PASSWORD, Charger, basic, ocpp_url, wait_for

T0 = "2026-06-01T06:00:00Z"


class DroppingCharger(Charger):
    """Drops a transaction refused at the start (no StopTransaction) and rejects a RemoteStop for it."""

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int, **kwargs):
        self.received.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        return call_result.RemoteStopTransaction(status="Rejected")


@contextlib.asynccontextmanager
async def station(edge: Any, charger_id: str, password: str | None) -> AsyncIterator[DroppingCharger]:
    headers = basic(charger_id, password) if password else None
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
        cp = DroppingCharger(charger_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call.BootNotification(charge_point_vendor="Test", charge_point_model="T1"))
            assert boot.status == "Accepted"
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


async def status(cp: Charger, connector: int, value: str) -> None:
    await cp.call(call.StatusNotification(connector_id=connector, error_code="NoError", status=value))


async def start(cp: Charger, tag: str, meter_start: int, connector: int = 1) -> Any:
    await status(cp, connector, "Preparing")
    return await cp.call(call.StartTransaction(connector_id=connector, id_tag=tag, meter_start=meter_start,
                                               timestamp=T0))


@pytest.mark.parametrize("cp_b_says, ended", [
    ("Available", "connector-available"),           # the driver unplugged at CP-B
    ("Finishing", "superseded-by-new-start"),       # the cable stays in until the next driver's start
])
async def test_a_refused_start_is_recorded_but_locks_nobody_out(make_edge, cp_b_says, ended):
    async with make_edge(clock=ManualClock(START)) as edge:
        records = edge.bus.subscribe()
        async with station(edge, "CP-1", PASSWORD) as cp_a, station(edge, "CP-2", None) as cp_b:
            first = await start(cp_a, "TAG-OK", 0)                  # TAG-1 on CP-A
            assert first.id_tag_info["status"] == "Accepted"
            await status(cp_a, 1, "Charging")

            ghost = await start(cp_b, "TAG-OK", 100)                # TAG-1 on CP-B at the same time
            assert ghost.id_tag_info["status"] == "ConcurrentTx"
            await status(cp_b, 1, cp_b_says)                        # CP-B drops it: no StopTransaction

            await cp_a.call(call.StopTransaction(meter_stop=5000, timestamp=T0, transaction_id=first.transaction_id))
            await status(cp_a, 1, "Finishing")
            again = await start(cp_a, "TAG-OK", 5000)               # TAG-1 on CP-A again: nothing else charges
            assert again.id_tag_info["status"] == "Accepted", again.id_tag_info

            other = await start(cp_b, "TAG-2", 100)                 # TAG-2 on CP-B
            assert other.id_tag_info["status"] == "Accepted"
            await status(cp_b, 1, "Charging")

            [on_b] = await edge.journal.read(Store.active_transactions, "CP-2")
            assert on_b["id"] == other.transaction_id
            assert set(edge.sessions.running()) == {again.transaction_id, other.transaction_id}

            async def ghost_record() -> dict:
                while True:
                    event = await records.get()
                    if event.kind == "cdr.created" and event.data["transaction_id"] == ghost.transaction_id:
                        return event.data
            summary = await asyncio.wait_for(ghost_record(), 10)

        [row] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == ghost.transaction_id]
        [cdr] = await edge.journal.read(Store.cdrs, cdr_id=summary["id"])
    assert (row["auth_status"], row["state"], row["stop_reason"]) == ("ConcurrentTx", "completed", "Other")
    assert row["edge_stop"].startswith(ended)
    assert cdr["stopped_by_edge"].startswith(ended) and cdr["stop_reason"] == "Other"
    assert cdr["energy_kwh"] == "0.000"


LIMITED = '''
[[tariffs]]
id = "short"
type = "duration-energy"
price_per_kwh = 0.40
max_minutes = 1

[[tariff_groups]]
id = "all"
base = "short"
evses = ["CP-1", "CP-2"]
'''


async def test_the_edge_does_not_remote_stop_a_ghost_every_minute(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITED) as edge:
        async with station(edge, "CP-2", None) as cp_b:
            ghost = await start(cp_b, "TAG-BLOCKED", 100)
            assert ghost.id_tag_info["status"] == "Blocked"
            # The site policy (stop) asks once, right after the answer; the charger has nothing to stop.
            await wait_for(lambda: cp_b.received, what="the policy's RemoteStopTransaction")
            await wait_for(lambda: ghost.transaction_id in edge.session_watch.running, what="the watch")
            for _ in range(5):                       # past the tariff's 1-minute limit, for 5 minutes
                clock.advance(61)
                await edge.session_watch.check()
            await asyncio.sleep(0.1)                 # a stop the watch sent would be on the wire by now
            assert [name for name, _ in cp_b.received] == ["RemoteStopTransaction"]
            assert ghost.transaction_id in edge.sessions.active() and not edge.sessions.running()


async def test_a_refused_start_the_charger_runs_anyway_is_running_and_stopped(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock) as edge:
        async with station(edge, "CP-2", None) as cp_b:
            late = await start(cp_b, "TAG-BLOCKED", 100)     # e.g. started offline from the charger's list
            tx = late.transaction_id
            assert late.id_tag_info["status"] == "Blocked" and not edge.sessions.running()
            await wait_for(lambda: cp_b.received, what="the policy's RemoteStopTransaction")
            # ... which this charger ignores: energy flows.
            await cp_b.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": T0, "sampledValue": [{"value": "900"}]}]))
            assert list(edge.sessions.running()) == [tx]
            # Now it blocks the token elsewhere, and the watch asks the charger to stop it.
            await wait_for(lambda: len(cp_b.received) == 2, what="the watch's RemoteStopTransaction")
            [row] = await edge.journal.read(Store.active_transactions, "CP-2")
            assert row["proven_running"].startswith("answered Blocked at the start, yet the charger runs it")


async def test_after_a_restart_a_refused_start_is_still_no_session(make_edge):
    async with make_edge(clock=ManualClock(START)) as edge:
        async with station(edge, "CP-1", PASSWORD) as cp_a, station(edge, "CP-2", None) as cp_b:
            first = await start(cp_a, "TAG-OK", 0)
            ghost = await start(cp_b, "TAG-OK", 100)
            assert ghost.id_tag_info["status"] == "ConcurrentTx"
            await cp_a.call(call.StopTransaction(meter_stop=5000, timestamp=T0, transaction_id=first.transaction_id))
    async with make_edge(clock=ManualClock(START)) as edge:
        assert list(edge.sessions.active()) == [ghost.transaction_id] and not edge.sessions.running()
        async with station(edge, "CP-1", PASSWORD) as cp_a:
            assert (await start(cp_a, "TAG-OK", 5000)).id_tag_info["status"] == "Accepted"
