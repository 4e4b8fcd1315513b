"""The authorization model through the local API: versions, bad input that
changes nothing, remote start by token or user, reservations, concurrency."""

from __future__ import annotations

from ocpp.v16 import call

from edge.journal import Store
from tests.edge.conftest import api_call, charger, simulated


async def test_invalid_changes_name_the_item_and_change_nothing(edge):
    before = await api_call(edge, "GET", "/auth/model")
    bad = await api_call(edge, "POST", "/tokens", body={"uid": "04:ZZ", "user_group": "residents"}, expect=400)
    assert 'tokens[3] (uid "04:ZZ")' in bad["error"] and "not hex" in bad["error"]
    bad = await api_call(edge, "POST", "/tokens", body={"id_tag": "X" * 21, "user_group": "residents"}, expect=400)
    assert "at most 20" in bad["error"]
    document = {**before["document"], "charge_groups": [
        {"id": "g", "policy": "private", "evses": ["NOT-HERE"]}]}
    bad = await api_call(edge, "PUT", "/auth/model", body={"document": document}, expect=400)
    assert any('charger "NOT-HERE" is not a charger of this site' in p for p in bad["problems"])
    document = {**before["document"], "user_groups": [{"id": "residents", "charge_groups": ["ghost"]}]}
    bad = await api_call(edge, "PUT", "/auth/model", body={"document": document}, expect=400)
    assert 'charge group "ghost" does not exist' in bad["error"]
    after = await api_call(edge, "GET", "/auth/model")
    assert after == before
    missing = await api_call(edge, "POST", "/tokens/NOPE/block", expect=404)
    assert "no token" in missing["error"]


async def test_each_change_is_a_version_with_its_author(edge):
    v2 = await api_call(edge, "POST", "/tokens", body={"uid": "0A0B0C0D", "user_group": "residents"})
    v3 = await api_call(edge, "POST", "/tokens/0D0C0B0A/block")      # found in reversed byte order
    assert (v2["version"], v3["version"]) == (2, 3)
    history = await api_call(edge, "GET", "/auth/history")
    assert [(h["version"], h["source"], h["actor"]) for h in history] == [
        (3, "api", "tester"), (2, "api", "tester"), (1, "config", "site config")]
    tokens = {t["id_tag"]: t for t in await api_call(edge, "GET", "/tokens")}
    assert tokens["0A0B0C0D"]["status"] == "Blocked" and tokens["0A0B0C0D"]["rfid"]


async def test_model_survives_restart_and_config_edit_wins(make_edge, tmp_path):
    async with make_edge() as edge:
        await api_call(edge, "POST", "/tokens", body={"id_tag": "API-TAG", "user_group": "residents"})
    async with make_edge() as edge:
        assert edge.authorizer.model.find("API-TAG") is not None and edge.authorizer.model.version == 2
    async with make_edge(extra='[[tokens]]\nid_tag = "CONFIG-TAG"\nuser_group = "residents"\n') as edge:
        model = edge.authorizer.model
        assert model.version == 3 and model.find("CONFIG-TAG") and model.find("API-TAG") is None


async def test_concurrent_sessions_and_group_member_stop(edge):
    async with charger(edge) as cp:
        start = call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp="2026-11-23T10:00:00Z")
        first = await cp.call(start)
        assert first.id_tag_info == {"status": "Accepted", "parent_id_tag": "residents"}
        other = await cp.call(call.StartTransaction(connector_id=2, id_tag="TAG-OK", meter_start=0,
                                                    timestamp="2026-11-23T10:01:00Z"))
        assert other.id_tag_info["status"] == "ConcurrentTx"
        # Tapping the same card where it charges (to stop) is fine.
        assert (await cp.call(call.Authorize(id_tag="TAG-OK"))).id_tag_info["status"] == "Accepted"


async def test_remote_start_by_user_stop_and_reservation(make_edge):
    extra = '[[tokens]]\nid_tag = "APP-7"\nuser = "Ana"\nuser_group = "residents"\n'
    async with make_edge(extra=extra) as edge:
        async with simulated(edge) as sim:
            await sim.plug_in(1)
            result = await api_call(edge, "POST", "/chargers/CP-1/remote-start",
                                    body={"connector": 1, "token": "Ana"})
            assert result["outcome"] == "ok"
            await sim.wait_event("start_transaction")
            await sim.flush()
            tx = sim.connector(1).transaction_id
            assert sim.connector(1).id_tag == "APP-7"
            refused = await api_call(edge, "POST", "/chargers/CP-1/remote-start",
                                     body={"connector": 2, "token": "TAG-BLOCKED"}, expect=403)
            assert "Blocked" in refused["error"]
            stop = await api_call(edge, "POST", f"/sessions/{tx}/remote-stop")
            assert stop["outcome"] == "ok"
            await sim.wait_event("stop_transaction")
            reserved = await api_call(edge, "POST", "/chargers/CP-1/reservations",
                                      body={"connector": 2, "token": "TAG-2", "minutes": 30})
            assert reserved["outcome"] == "ok"
            [last] = await edge.journal.read(Store.log, "actions", "CP-1", 1)
            assert last["action"] == "ReserveNow" and '"parentIdTag": "residents"' in last["request"]
        records = await edge.journal.read(Store.authorizations, charger_id="CP-1")
        assert {r["method"] for r in records} >= {"remote", "reservation", "start"}
