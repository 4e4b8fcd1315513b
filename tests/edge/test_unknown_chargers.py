"""Unknown chargers under both policies, and adoption by an installer."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from ocpp.exceptions import SecurityError
from ocpp.v16 import call
from websockets.asyncio.client import connect

from edge.journal import Store
from tests.edge.conftest import Charger, api_call, ocpp_url


@contextlib.asynccontextmanager
async def stranger(edge, charger_id="NEW-1"):
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"]) as ws:
        cp = Charger(charger_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()


async def boot(cp):
    return await cp.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="X"))


async def test_reject_policy(make_edge):
    async with make_edge(unknown="reject") as edge:
        async with stranger(edge) as cp:
            answer = await boot(cp)
            assert answer.status == "Rejected" and answer.interval > 0
            with pytest.raises(SecurityError):
                await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                    timestamp="2026-11-23T10:00:00Z"), suppress=False)
        assert await edge.journal.read(Store.transactions) == []
        [row] = [r for r in await edge.journal.read(Store.chargers) if r["id"] == "NEW-1"]
        assert (row["registration"], row["vendor"]) == ("rejected", "Acme")


async def test_pending_until_adopted(make_edge):
    async with make_edge(unknown="pending") as edge:
        async with stranger(edge) as cp:
            assert (await boot(cp)).status == "Pending"
            with pytest.raises(SecurityError):
                await cp.call(call.Heartbeat(), suppress=False)

            result = await api_call(edge, "POST", "/chargers/NEW-1/adopt")
            assert result["adopted"] == "NEW-1"
            assert result["trigger"]["outcome"] == "ok"
            assert ("TriggerMessage", {"requested_message": "BootNotification"}) in cp.received

            assert (await boot(cp)).status == "Accepted"
            assert (await cp.call(call.Heartbeat())).current_time
        # Adoption survives a restart of the edge.
    async with make_edge(unknown="pending") as edge:
        assert edge.directory.is_known("NEW-1")
