"""Bad frames get the right CALLERROR or cost the sender its own connection;
every other charger keeps being served and nothing journaled is lost."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from edge.journal import Store
from tests.edge.conftest import PASSWORD, Charger, basic, charger, ocpp_url


async def raw(edge, charger_id="CP-2", **kwargs):
    return connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"], **kwargs)


async def exchange(ws, frame: str | bytes) -> list:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.mark.parametrize("frame, unique_id, code", [
    ('[2, "a1", "Heartbeat", {', "a1", "FormationViolation"),                   # not JSON (id still found)
    ('{"hello": "world"}', "-1", "FormationViolation"),                           # not an array
    ('[2]', "-1", "FormationViolation"),                                          # no unique id
    ('[2, "a2"]', "a2", "FormationViolation"),                                    # missing elements
    ('[7, "a3", "Heartbeat", {}]', "a3", "FormationViolation"),                   # wrong message type id
    ('[2, 17, "Heartbeat", {}]', "17", "FormationViolation"),                     # unique id not a string
    ('[2, "a4", "FlyToTheMoon", {}]', "a4", "NotImplemented"),                    # unknown action
    ('[2, "a5", "Reset", {"type": "Soft"}]', "a5", "NotSupported"),               # central system's action
    ('[2, "a6", "BootNotification", {"chargePointVendor": "V"}]', "a6", "ProtocolError"),   # required missing
    ('[2, "a7", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}]',
     "a7", "TypeConstraintViolation"),                                            # wrong type
    ('[2, "a8", "Heartbeat", {"surprise": 1}]', "a8", "FormationViolation"),      # property not in schema
    ('[2, "a9", "Authorize", {"idTag": "123456789012345678901"}]', "a9", "TypeConstraintViolation"),  # > 20 chars
    ('[2, "b1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}]',
     "b1", "FormationViolation"),                                                 # enum value not in 1.6
])
async def test_bad_frame_gets_callerror_and_connection_stays(edge, frame, unique_id, code):
    async with await raw(edge) as ws:
        reply = await exchange(ws, frame)
        assert reply[:3] == [4, unique_id, code], reply
        # The same connection still works.
        ok = await exchange(ws, '[2, "ok", "Heartbeat", {}]')
        assert ok[0] == 3 and ok[1] == "ok"


async def test_invalid_utf8_binary_frame(edge):
    async with await raw(edge) as ws:
        reply = await exchange(ws, b'\xff\xfe[2,"x","Heartbeat",{}]')
        assert reply[:3] == [4, "-1", "FormationViolation"]


async def test_oversized_frame_closes_only_that_connection(edge):
    limit = edge.config.ocpp.max_frame_bytes
    async with charger(edge, "CP-1") as good:
        async with await raw(edge) as bad:
            await bad.send('[2,"big","DataTransfer",{"vendorId":"x","data":"' + "A" * (limit + 10) + '"}]')
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(bad.recv(), 5)
            assert closed.value.rcvd.code == 1009
        assert (await good.call(call.Heartbeat())).current_time


async def test_flooding_charger_is_disconnected_others_keep_going(make_edge):
    async with make_edge() as edge:
        events = edge.bus.subscribe()
        async with charger(edge, "CP-1") as good:
            tx = (await good.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                        timestamp="2026-11-23T10:00:00Z"))).transaction_id
            async with await raw(edge) as flood:
                burst = edge.config.ocpp.message_burst
                with pytest.raises(ConnectionClosed) as closed:
                    for i in range(burst * 5):
                        await flood.send(f'[2,"f{i}","Heartbeat",{{}}]')
                    while True:  # drain answers until the edge closes us
                        await asyncio.wait_for(flood.recv(), 5)
                assert closed.value.rcvd.code == 1008
            assert (await good.call(call.Heartbeat())).current_time
            await good.call(call.StopTransaction(meter_stop=10, timestamp="2026-11-23T10:10:00Z",
                                                 transaction_id=tx))
        while (event := await asyncio.wait_for(events.get(), 5)).kind != "charger.disconnected" \
                or event.charger_id != "CP-2":
            pass
        assert "flooding" in event.data["reason"]
        await edge.presence.flush()
        network = await edge.journal.read(Store.log, "network", "CP-2")
        assert any("flooding" in (n["detail"] or "") for n in network)
        [row] = await edge.journal.read(Store.transactions)
        assert row["state"] == "completed"


async def test_nothing_journaled_is_lost_after_garbage(edge):
    async with charger(edge, "CP-1") as cp:
        tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                  timestamp="2026-11-23T10:00:00Z"))).transaction_id
    async with await raw(edge) as ws:
        for frame in ['nonsense', '[2,"x","StartTransaction",{"connectorId":1}]',
                      '[2,"y","StopTransaction",{"transactionId":"1","meterStop":1,"timestamp":"x"}]']:
            assert (await exchange(ws, frame))[0] == 4
    [row] = await edge.journal.read(Store.transactions)
    assert (row["id"], row["state"]) == (tx, "active")
    assert await edge.journal.read(Store.unmatched_stops) == []


async def test_subprotocol_and_path_are_checked(edge):
    from websockets.exceptions import InvalidStatus
    url = ocpp_url(edge, "CP-2")
    for kwargs in ({}, {"subprotocols": ["ocpp2.0"]}):
        with pytest.raises(InvalidStatus) as err:
            async with connect(url, **kwargs):
                pass
        assert err.value.response.status_code == 400
        assert b"subprotocol" in err.value.response.body
    # 2.0.1 is served (docs/ocpp-201.md); offered beside 1.6, 1.6 is preferred.
    async with connect(url, subprotocols=["ocpp2.0.1"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
    async with connect(url, subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"
    with pytest.raises(InvalidStatus) as err:
        async with connect(f"ws://127.0.0.1:{edge.ocpp.bound_port}/a/b/c", subprotocols=["ocpp1.6"]):
            pass
    assert err.value.response.status_code == 404


async def test_TC_088_websocket_subprotocol_negotiation(edge):
    """OCA TC_088 (CSMS): a charger offering several subprotocols gets the one the edge speaks, named
    in the handshake's answer (RFC 6455 Sec-WebSocket-Protocol), and is served on it."""
    async with connect(ocpp_url(edge, "CP-1"), subprotocols=["ocpp1.5", "ocpp1.6"],
                       additional_headers=basic("CP-1", PASSWORD)) as ws:
        assert ws.subprotocol == "ocpp1.6"
        cp = Charger("CP-1", ws)
        task = asyncio.create_task(cp.start())
        try:
            answer = await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            assert answer.status == "Accepted"
        finally:
            task.cancel()


async def test_password_checked_before_websocket_opens(edge):
    from websockets.exceptions import InvalidStatus
    url = ocpp_url(edge, "CP-1")
    for headers in (None, basic("CP-1", "wrong"), basic("CP-2", PASSWORD), {"Authorization": "Basic !!!"}):
        with pytest.raises(InvalidStatus) as err:
            async with connect(url, subprotocols=["ocpp1.6"], additional_headers=headers):
                pass
        assert err.value.response.status_code == 401
    async with connect(url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-1", PASSWORD)) as ws:
        assert ws.subprotocol == "ocpp1.6"
    await edge.presence.flush()
    network = await edge.journal.read(Store.log, "network", "CP-1")
    assert sum(n["event"] == "auth-rejected" for n in network) == 4
