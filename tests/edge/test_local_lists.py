"""Local authorization lists on a simulated charger that keeps a real list:
full and differential sync, version mismatch recovery, splitting and
trimming, block -> ClearCache -> rejection, and a session started offline
from the list reconciled when the charger is back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edge.journal import Store
from simulator.charge_point import SimulatedChargePoint
from tests.edge.conftest import PASSWORD, api_call, free_port, simulated
from tests.stations import CHARGERS, VERSIONS, simulated_station

MORE_TOKENS = "".join(f'''
[[tokens]]
uid = "AA:BB:CC:0{i}"
user_group = "residents"
''' for i in range(1, 5))


async def requests_until(sim, predicate, timeout: float = 10.0) -> None:
    """Wait on the simulator's own events (each central-system request it answers)."""
    seen = sum(1 for name, _ in sim.events if name == "request")
    while not predicate():
        seen += 1
        await sim.wait_event("request", count=seen, timeout=timeout)


async def settled(edge, charger_id: str = "CP-1") -> dict:
    await asyncio.wait_for(edge.local_lists.idle.wait(), 10)
    return edge.local_lists.held[charger_id]


def sent(edge_actions, action):
    return [a for a in edge_actions if a["action"] == action]


@pytest.mark.parametrize("version", VERSIONS)
async def test_full_sync_then_differential(make_edge, version):
    async with make_edge(push_local_lists=True, chargers=CHARGERS) as edge:
        async with simulated_station(version, edge) as station:
            await station.requests_until(lambda: station.local_list_version > 0)
            assert station.local_list == {"TAG-OK": "Accepted", "TAG-2": "Accepted", "TAG-BLOCKED": "Blocked"}
            assert station.setting("LocalAuthorizeOffline") == "true"
            assert station.setting("AuthorizationCacheEnabled") == "false"
            held = await settled(edge, station.id)
            assert (held["status"], held["version"]) == ("in-sync", station.local_list_version)

            await api_call(edge, "POST", "/tokens", body={"id_tag": "NEW-CARD", "user_group": "residents"})
            await station.requests_until(lambda: "NEW-CARD" in station.local_list)
            await settled(edge, station.id)
        actions = await edge.journal.read(Store.log, "actions", station.id, 100)
        updates = [a for a in reversed(sent(actions, "SendLocalList"))]
        assert ['"updateType": "Full"' in u["request"] for u in updates] == [True, False]
        assert '"NEW-CARD"' in updates[1]["request"] and '"TAG-OK"' not in updates[1]["request"]


async def test_split_and_trim_to_the_chargers_limits(make_edge):
    async with make_edge(push_local_lists=True, extra=MORE_TOKENS) as edge:
        # Make TAG-2 the most recently used token, so it is kept when the list is cut.
        await edge.sessions.authorize("CP-2", "TAG-2")
        sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD)
        sim.config.set("SendLocalListMaxLength", "2")
        sim.config.set("LocalAuthListMaxLength", "5")
        task = asyncio.create_task(sim.run())
        await sim.wait_accepted()
        await requests_until(sim, lambda: len(sim.local_auth.entries) == 5)
        held = await settled(edge)
        task.cancel()
        assert held["status"] == "truncated" and "7 tokens admitted, charger holds 5" in held["detail"]
        assert "TAG-2" in sim.local_auth.entries
        actions = await edge.journal.read(Store.log, "actions", "CP-1", 100)
        assert len(sent(actions, "SendLocalList")) == 3   # 2 + 2 + 1


async def test_version_mismatch_is_recovered_with_a_full_list(make_edge):
    async with make_edge(push_local_lists=True) as edge:
        async with simulated(edge) as sim:
            await requests_until(sim, lambda: sim.local_auth.version > 0)
            await settled(edge)
            sim.local_auth.version = 500   # the charger's list moved on without us
            await api_call(edge, "POST", "/tokens/TAG-2/block")
            await requests_until(sim, lambda: sim.local_auth.entries.get("TAG-2") == "Blocked")
            held = await settled(edge)
        assert held["status"] == "in-sync" and held["version"] == sim.local_auth.version
        actions = await edge.journal.read(Store.log, "actions", "CP-1", 100)
        answers = [a["response"] for a in reversed(sent(actions, "SendLocalList"))]
        assert "VersionMismatch" in answers[1] and "Accepted" in answers[2]


@pytest.mark.parametrize("version", VERSIONS)
async def test_block_clears_cache_and_the_token_is_refused(make_edge, version):
    # The stations keep a cache here: clearing it is what a block must do (off by default: nothing to clear).
    async with make_edge(push_local_lists=True, chargers=CHARGERS,
                         extra="charger_settings = { authorization_cache_enabled = true }") as edge:
        async with simulated_station(version, edge) as station:
            await station.requests_until(lambda: station.local_list_version > 0)
            await settled(edge, station.id)
            station.remember("TAG-OK", "Accepted")   # a cached Accepted from earlier
            await api_call(edge, "POST", "/tokens/tag-ok/block")
            await station.requests_until(lambda: station.local_list.get("TAG-OK") == "Blocked")
            assert station.cache == {}
            assert await station.authorize("TAG-OK") == "Blocked"
        records = await api_call(edge, "GET", "/authorizations?status=Blocked")
        assert records[0]["id_tag"] == "TAG-OK" and records[0]["method"] == "rfid"


async def test_offline_start_while_edge_is_down_is_reconciled(make_edge):
    port = free_port()
    sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{port}/ocpp", password=PASSWORD, reconnect_delay=0.1)
    task = asyncio.create_task(sim.run())
    try:
        async with make_edge(push_local_lists=True, ocpp_port=port) as edge:
            await sim.wait_accepted()
            await requests_until(sim, lambda: sim.local_auth.version > 0)
            await settled(edge)
        await sim.wait_event("disconnected")
        # The edge is gone: the charger admits TAG-OK from its own list.
        assert await sim.authorize("TAG-OK") == "Accepted"
        await sim.plug_in(1)
        assert await sim.start_transaction(1, "TAG-OK") < 0    # provisional until the edge answers
        async with make_edge(push_local_lists=True, ocpp_port=port) as edge:
            await sim.flush()                                   # the queued StartTransaction is delivered
            tx = sim.connector(1).transaction_id
            assert tx > 0
            await sim.stop_transaction(1, "Local")
            [row] = await edge.journal.read(Store.transactions)
            assert (row["id"], row["id_tag"], row["auth_status"], row["state"], row["flag"]) == (
                tx, "TAG-OK", "Accepted", "completed", None)
    finally:
        task.cancel()


async def test_late_start_of_a_token_blocked_meanwhile_is_flagged_and_stopped(make_edge):
    from datetime import datetime, timedelta, timezone
    async with make_edge(push_local_lists=True) as edge:
        # The charger's clock says the session began 5 minutes ago: it comes in late.
        sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                   reconnect_delay=0.1,
                                   wall_clock=lambda: datetime.now(timezone.utc) - timedelta(minutes=5))
        task = asyncio.create_task(sim.run())
        await sim.wait_accepted()
        await requests_until(sim, lambda: sim.local_auth.version > 0)
        await settled(edge)
        task.cancel()                                   # the charger loses its link
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api_call(edge, "POST", "/tokens/TAG-2/block")   # meanwhile, the card is reported lost
        assert await sim.authorize("TAG-2") == "Accepted"     # the charger's list still says so
        await sim.plug_in(1)
        await sim.start_transaction(1, "TAG-2")
        events = edge.bus.subscribe()
        task = asyncio.create_task(sim.run())                 # link back
        try:
            while not ((e := await asyncio.wait_for(events.get(), 10)).kind == "command.done"
                       and e.data["action"] == "RemoteStopTransaction"):
                pass
            await sim.wait_event("stop_transaction", timeout=10)
            await sim.flush()
            await requests_until(sim, lambda: sim.local_auth.entries.get("TAG-2") == "Blocked")
        finally:
            task.cancel()
        [row] = await edge.journal.read(Store.transactions)
        assert row["auth_status"] == "Blocked" and row["state"] == "completed"
        assert row["flag"].startswith("started late") and "policy: stop" in row["flag"]
        # The charger stops it itself (StopTransactionOnInvalidId, set by the edge) or on our RemoteStop.
        assert row["stop_reason"] in ("DeAuthorized", "Remote")
        actions = await edge.journal.read(Store.log, "actions", "CP-1", 100)
        assert [a["actor"] for a in sent(actions, "RemoteStopTransaction")] == ["edge"]


async def test_charger_view_shows_its_local_list(make_edge):
    async with make_edge(push_local_lists=True) as edge:
        async with simulated(edge) as sim:
            await requests_until(sim, lambda: sim.local_auth.version > 0)
            await settled(edge)
            view = await api_call(edge, "GET", "/chargers/CP-1")
        assert view["local_list"]["status"] == "in-sync" and view["local_list"]["entries"] == 3
