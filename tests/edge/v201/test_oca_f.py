"""OCA OCPP 2.0.1 test cases of block F (Remote control), CSMS side: what the edge sends the simulated 2.0.1
station (simulator.v201) over real WebSockets when the site asks (the local API's remote start, the core's
unlock and triggers, the operator's raw commands), and how it takes what the station sends back.

Not reachable from this site controller: TC_F_13/F_14 (TriggerMessage TransactionEvent: the core never asks a
station to repeat a transaction's state; GetTransactionStatus is block E's). TC_F_03 here is the case of the
OCA document (remote start first, AuthorizeRemoteStart false); the remote stop naming the station's own
transactionId is tests/edge/v201/test_transactions.py's.
"""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, strategies as st
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, _validate_payload
from ocpp.v16 import call as call16

from edge.journal import Store
from edge.ocpp.v201 import translate
from edge.stations.model import Trigger
from tests.edge.conftest import api_call, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station as _station


@contextlib.asynccontextmanager
async def station(edge, **kwargs):
    """The simulated station, accepted and online: its follow-ups (an Authorize after a remote start) need
    its link, which it sets only after its boot's StatusNotifications."""
    async with _station(edge, **kwargs) as sim:
        await sim.wait_online()
        yield sim


async def remote_start(edge, evse: int = 1, token: str = "TAG-OK") -> dict:
    """The operator's remote start through the local API; -> the RequestStartTransaction sent, with its answer."""
    result = await api_call(edge, "POST", f"/chargers/{STATION}/remote-start", body={"connector": evse, "token": token})
    assert result["outcome"] == "ok", result
    [logged] = [a for a in await edge.journal.read(Store.log, "actions", STATION, 50)
                if a["action"] == "RequestStartTransaction"][:1]
    return {**result, "request": json.loads(logged["request"])}


async def frames(edge) -> list[tuple[str, list]]:
    """The station's frames, oldest first, as the edge's communication log keeps them: (in|out, frame)."""
    await edge.ocpp.communication_log.flush()
    rows = await edge.journal.read(Store.log, "communication", STATION, 1000)
    out = []
    for r in reversed(rows):
        try:       # a frame longer than the log keeps is cut: not one of the small ones read here
            out.append((r["direction"], json.loads(r["frame"])))
        except json.JSONDecodeError:
            continue
    return out


async def answers_to(edge, action: str) -> list[tuple[dict, list]]:
    """Each Call of `action` from the station with the edge's answer frame: [3, id, payload] or a CALLERROR."""
    seen = await frames(edge)
    calls = [(f[1], f[3]) for d, f in seen if d == "in" and f[0] == 2 and f[2] == action]
    answers = {f[1]: f for d, f in seen if d == "out" and f[0] in (3, 4)}
    return [(payload, answers.get(unique_id)) for unique_id, payload in calls]


async def open_session(edge, evse: int = 1) -> dict:
    await wait_for(lambda: edge.sessions.connectors.open_on(STATION, evse), what="the session")
    [row] = await edge.journal.read(Store.transactions, charger_id=STATION)
    return row


async def test_TC_F_01_CSMS_remote_start_after_the_cable(make_edge):
    """F01/F02 (cable plugged in first): RequestStartTransaction with the configured idToken and a remoteStartId;
    the station starts on it, its TransactionEvents carry the remoteStartId, the site's session is the token's."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.plug_in(1)
            result = await remote_start(edge)
            request = result["request"]
            assert request["idToken"] == {"idToken": "TAG-OK", "type": "Central"}
            assert request["evseId"] == 1 and isinstance(request["remoteStartId"], int) and request["remoteStartId"] > 0
            assert result["response"]["status"] == "Accepted"
            await wait_for(lambda: sim.evses[1].tx is not None and sim.evses[1].tx.id_token is not None,
                           what="the transaction")
            assert sim.evses[1].tx.remote_start_id == request["remoteStartId"]
            await sim.flush()
            row = await open_session(edge)
            assert (row["id_tag"], row["auth_status"], row["state"]) == ("TAG-OK", "Accepted", "active")
            events = await answers_to(edge, "TransactionEvent")
            assert events and all(p["transactionInfo"].get("remoteStartId") == request["remoteStartId"]
                                  for p, _ in events)
            assert all(answer[0] == 3 and answer[2]["idTokenInfo"]["status"] == "Accepted"
                       for p, answer in events if "idToken" in p)

            # F03: the operator's remote stop names the station's own transactionId; the station ends it Remote.
            station_tx = sim.evses[1].tx.transaction_id
            stop = await api_call(edge, "POST", f"/sessions/{row['id']}/remote-stop", body={"reason": "F03"})
            assert stop["outcome"] == "ok", stop
            [logged] = [a for a in await edge.journal.read(Store.log, "actions", STATION, 50)
                        if a["action"] == "RequestStopTransaction"]
            assert json.loads(logged["request"]) == {"transactionId": station_tx}
            ended = await sim.wait_event("transaction_ended")
            assert ended["reason"] == "Remote"
            await sim.flush()
            [row] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert (row["state"], row["stop_reason"]) == ("completed", "Remote")


async def test_TC_F_02_CSMS_remote_start_first_with_authorize_remote_start(make_edge):
    """F02.FR.01/F01.FR.01: with AuthorizeRemoteStart the station asks Authorize for the remote start's token
    before it starts; the CSMS answers Accepted, and the session starts when the car is plugged in."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("AuthCtrlr", "AuthorizeRemoteStart", "true")
            await remote_start(edge)
            asked = await sim.wait_event("authorize")
            assert (asked["id_token"], asked["type"], asked["status"], asked["source"]) == \
                ("TAG-OK", "Central", "Accepted", "CSMS")
            await sim.plug_in(1)
            await sim.flush()
            row = await open_session(edge)
            assert (row["id_tag"], row["auth_status"]) == ("TAG-OK", "Accepted")
            [(authorize, answer)] = await answers_to(edge, "Authorize")
            assert authorize["idToken"] == {"idToken": "TAG-OK", "type": "Central"}
            assert answer[2]["idTokenInfo"]["status"] == "Accepted"


async def test_TC_F_03_CSMS_remote_start_first_without_authorize_remote_start(make_edge):
    """F02.FR.01/F01.FR.02: without AuthorizeRemoteStart the station starts on the remote start's token
    without an AuthorizeRequest; the CSMS's TransactionEventResponse accepts the token."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            assert not sim.device.flag("AuthCtrlr", "AuthorizeRemoteStart")
            await remote_start(edge)
            await sim.plug_in(1)
            await sim.flush()
            row = await open_session(edge)
            assert (row["id_tag"], row["auth_status"]) == ("TAG-OK", "Accepted")
            assert await answers_to(edge, "Authorize") == []
            assert sim._latest["transaction_event_answer"]["status"] == "Accepted"


async def test_TC_F_04_CSMS_remote_start_the_car_never_comes(make_edge):
    """E03.FR.04/05: a transaction started at the remote start (TxStartPoint Authorized) that no car joins
    ends at EVConnectionTimeOut (triggerReason EVConnectTimeout, stoppedReason Timeout); the CSMS takes both
    events and closes the session without energy."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("TxCtrlr", "TxStartPoint", "Authorized")
            sim.device.put("TxCtrlr", "EVConnectionTimeOut", "1")
            await remote_start(edge)
            ended = await sim.wait_event("transaction_ended", timeout=10)
            assert ended["reason"] == "Timeout"
            await sim.flush()
            await wait_for(lambda: not edge.sessions.connectors.open_on(STATION, 1), what="the session closed")
            [row] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert row["state"] == "completed" and row["meter_stop"] == row["meter_start"]
            events = await answers_to(edge, "TransactionEvent")
            assert [p["eventType"] for p, _ in events] == ["Started", "Ended"]
            assert events[1][0]["triggerReason"] == "EVConnectTimeout"
            assert all(answer is not None and answer[0] == 3 for _, answer in events)


async def test_TC_F_06_CSMS_unlock_without_a_transaction(make_edge):
    """F05: UnlockConnectorRequest with the configured evseId and connectorId; the station answers Unlocked.
    The operator's raw 1.6 UnlockConnector (edgectl cmd) reaches it as the same 2.0.1 request."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            result = await edge.control.unlock(STATION, 1, actor="test", reason="TC_F_06")
            assert (result.outcome, result.request, result.response) == \
                ("ok", {"evseId": 1, "connectorId": 1}, {"status": "Unlocked"})
            raw = await edge.commands.send(STATION, "UnlockConnector", {"connectorId": 2}, actor="test",
                                           reason="TC_F_06 raw")
            assert (raw.outcome, raw.response) == ("ok", {"status": "Unlocked"})
            unlocked = [d["evse_id"] for n, d in sim.events if n == "request" and d["action"] == "UnlockConnector"]
            assert unlocked == [1, 2]


async def test_TC_F_11_and_TC_F_12_CSMS_trigger_meter_values(make_edge):
    """F06.FR.01/02: TriggerMessage MeterValues for one EVSE (evse.id set, TC_F_11) and for all (evse
    omitted, TC_F_12); the station answers Accepted and sends MeterValues, which the CSMS answers."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge):
            one = await edge.control.trigger(STATION, Trigger.METER_VALUES, evse=1, actor="test", reason="TC_F_11")
            every = await edge.control.trigger(STATION, Trigger.METER_VALUES, actor="test", reason="TC_F_12")
            assert one.request == {"requestedMessage": "MeterValues", "evse": {"id": 1}}
            assert every.request == {"requestedMessage": "MeterValues"}
            assert one.response == every.response == {"status": "Accepted"}

            async def meter_values() -> list:
                return await answers_to(edge, "MeterValues")
            await wait_for_async(lambda: meter_values(), lambda got: len(got) == 3, what="1 + 2 MeterValues")
            got = await meter_values()
            assert sorted(p["evseId"] for p, _ in got) == [1, 1, 2]
            assert all(answer is not None and answer[0] == 3 for _, answer in got), got


async def test_TC_F_15_TC_F_18_TC_F_20_CSMS_trigger_log_firmware_status_and_heartbeat(make_edge):
    """F06.FR.01: TriggerMessage LogStatusNotification (the operator's 1.6 DiagnosticsStatusNotification),
    FirmwareStatusNotification and Heartbeat; the station sends each, and the CSMS answers each (the
    Heartbeat with its currentTime)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge):
            for legacy, action in (("DiagnosticsStatusNotification", "LogStatusNotification"),
                                   ("FirmwareStatusNotification", "FirmwareStatusNotification")):
                sent = await edge.commands.send(STATION, "TriggerMessage", {"requestedMessage": legacy},
                                                actor="test", reason="TC_F_15/18")
                assert (sent.outcome, sent.response) == ("ok", {"status": "Accepted"}), sent
            beat = await edge.control.trigger(STATION, Trigger.HEARTBEAT, actor="test", reason="TC_F_20")
            assert (beat.request, beat.response) == ({"requestedMessage": "Heartbeat"}, {"status": "Accepted"})
            for action in ("LogStatusNotification", "FirmwareStatusNotification", "Heartbeat"):
                got = await wait_for_async(lambda: answers_to(edge, action), bool, what=action)
                assert all(answer is not None and answer[0] == 3 for _, answer in got), (action, got)
            [(_, heartbeat)] = (await answers_to(edge, "Heartbeat"))[-1:]
            assert "currentTime" in heartbeat[2]


async def test_TC_F_23_and_TC_F_24_CSMS_trigger_status_notification(make_edge):
    """F06.FR.01/02/13: TriggerMessage StatusNotification for the configured EVSE; the station sends its
    connector's status (Available, TC_F_23; Occupied with a car, TC_F_24) and the CSMS takes it into the
    site's connector status."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            events = edge.bus.subscribe()
            for expected, site_status in (("Available", "Available"), ("Occupied", "Preparing")):
                if expected == "Occupied":
                    await sim.plug_in(1)
                triggered = await edge.control.trigger(STATION, Trigger.STATUS, evse=1, actor="test", reason="TC_F_23")
                assert (triggered.request, triggered.response) == \
                    ({"requestedMessage": "StatusNotification", "evse": {"id": 1}}, {"status": "Accepted"})
                while True:
                    event = await events.get()
                    if event.kind == "connector.status" and event.data["ocpp_status"] == expected:
                        break
                assert (event.data["connector_id"], event.data["status"]) == (1, site_status)


async def test_TC_F_27_CSMS_trigger_not_implemented_is_taken_as_a_refusal(make_edge):
    """F06.FR.08: a station that cannot send the requested message answers NotImplemented; the CSMS takes the
    answer as a refusal (actions log: rejected, not an error to retry) and the station stays usable."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.untriggerable = {"MeterValues"}
            result = await edge.control.trigger(STATION, Trigger.METER_VALUES, evse=1, actor="test", reason="TC_F_27")
            assert (result.outcome, result.response) == ("rejected", {"status": "NotImplemented"}), result
            beat = await edge.control.trigger(STATION, Trigger.HEARTBEAT, actor="test", reason="TC_F_27")
            assert beat.response == {"status": "Accepted"}
        [logged] = [a for a in await edge.journal.read(Store.log, "actions", STATION, 50) if a["reason"] == "TC_F_27"
                    and "MeterValues" in a["request"]]
        assert logged["outcome"] == "rejected"


async def wait_for_async(read, done=bool, timeout: float = 5.0, what: str = "condition"):
    """Poll an async read until `done(value)`, on the event loop's own ticks."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {value}")
        await asyncio.sleep(0.02)


@given(st.one_of(
    st.builds(call16.TriggerMessage, requested_message=st.sampled_from(
        ["BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
         "MeterValues", "StatusNotification"]), connector_id=st.one_of(st.none(), st.integers(0, 100))),
    st.builds(call16.UnlockConnector, connector_id=st.integers(1, 100)),
    st.builds(call16.ChangeAvailability, connector_id=st.integers(0, 100),
              type=st.sampled_from(["Operative", "Inoperative"])),
    st.just(call16.ClearCache())))
def test_operator_commands_reach_a_201_station_as_valid_201_requests(payload):
    """The operator's raw 1.6 command (its params from the API, checked by the 1.6 schema) becomes a 2.0.1
    request the station's library takes; the EVSE is the 1.6 connector, 0 the whole station."""
    twin = translate.as_v201_request(payload)
    assert twin is not None
    body = json.loads(json.dumps(snake_to_camel_case(remove_nones(serialize_as_dict(twin)))))
    _validate_payload(Call("1", type(twin).__name__, body), "2.0.1")
    connector = getattr(payload, "connector_id", None)
    evse = body.get("evseId", (body.get("evse") or {}).get("id"))
    assert evse == (connector or None)
