"""OCA OCPP 2.0.1 test cases of block C (Authorization), CSMS side: the real edge answers the simulated 2.0.1
station (simulator.v201) over real WebSockets as each case's tool validations expect.

Where a case has the tool (OCTT) send an exact message, the test sends that message through the simulated
station's own connection (`sim.send`); where it has a driver act, the station acts (plug in, present a card).
Not applicable to this site controller (docs/ocpp-201.md): TC_C_47..49 (Master Pass: the site has no master
pass group) and TC_C_50..52 (ISO 15118 contract certificates: no OCSP/PKI at the edge).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from itertools import count

import pytest
from hypothesis import given, strategies as st
from ocpp.messages import CallResult, _validate_payload
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v201 import call, call_result

from edge.auth import AuthDecision
from edge.journal import Store
from edge.ocpp.v201 import transactions
from tests.edge.conftest import api_call, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station

# Every IdTokenEnumType a driver's token comes in (NoAuthorization has its own case below).
TOKEN_TYPES = ("ISO14443", "ISO15693", "Central", "KeyCode", "eMAID", "MacAddress", "Local")
EXPIRED = """
[[tokens]]
id_tag = "TAG-EXPIRED"
user_group = "residents"
expiry = "2020-01-01T00:00:00+00:00"
"""
FREE_VEND_EVSE_2 = """
[[charge_groups]]
id = "public"
policy = "free-vend"
evses = [{ charger = "CS-201", connector = 2 }]
"""
CACHE_ON = "charger_settings = { authorization_cache_enabled = true }\n"   # [authorization]: the stations keep a cache
GROUP = {"id_token": "residents", "type": "Central"}   # the site's user group, as the groupIdToken
_seq = count(1000)   # the raw events' seqNo, clear of the simulated station's own


def requests(sim, action: str) -> list[dict]:
    """The CSMS requests of `action` the station answered, in order (simulator events)."""
    return [data for name, data in sim.events if name == "request" and data.get("action") == action]


def token(value: str, kind: str = "ISO14443") -> dict:
    return {"id_token": value, "type": kind}


async def authorize(sim, value: str, kind: str = "ISO14443") -> dict:
    """The OCTT's AuthorizeRequest; -> the CSMS's idTokenInfo."""
    await sim.wait_online()
    return (await sim.send(call.Authorize(id_token=token(value, kind)))).id_token_info


async def transaction_event(sim, event_type: str, trigger: str, transaction_id: str, id_token: dict | None = None,
                            **info) -> dict | None:
    """The OCTT's TransactionEventRequest on EVSE 1; -> the CSMS's idTokenInfo (None: it sent none)."""
    await sim.wait_online()
    result = await sim.send(call.TransactionEvent(
        event_type=event_type, timestamp=datetime.now(timezone.utc).isoformat(), trigger_reason=trigger,
        seq_no=next(_seq), transaction_info={"transaction_id": transaction_id, **info},
        evse={"id": 1, "connector_id": 1}, id_token=id_token))
    return result.id_token_info


def cached(sim, value: str, status: str = "Accepted") -> None:
    """The station knows `value` from its Authorization Cache and starts on it without asking (C12)."""
    sim.device.put("AuthCtrlr", "LocalPreAuthorize", "true")
    sim.local_auth.remember(f"ISO14443:{value}", status)


async def test_TC_C_02_CSMS_unknown_token_is_invalid_whatever_its_type(make_edge):
    """C01.FR.07/C04.FR.01/C06.FR.04: an idToken the site does not know is Invalid (or Unknown) in every token
    type; the one the site knows is Accepted in every type (the same decision as 1.6: by the token's value)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            for kind in TOKEN_TYPES:
                assert (await authorize(sim, "NOT-A-CARD", kind))["status"] in ("Invalid", "Unknown"), kind
                assert await authorize(sim, "TAG-OK", kind) == {"status": "Accepted", "group_id_token": GROUP}, kind
        decided = await edge.journal.read(Store.authorizations, limit=100)
        assert len([d for d in decided if d["id_tag"] == "NOT-A-CARD" and d["status"] == "Invalid"]) == \
            len(TOKEN_TYPES)


async def test_TC_C_02_CSMS_no_authorization_is_the_free_vend_decision(make_edge):
    """C01: a NoAuthorization idToken (no value) is the site's free-vend decision: Accepted where a free-vend
    charge group covers the station, Invalid where only known tokens may charge."""
    async with make_edge(chargers=SITE_CHARGERS, extra=FREE_VEND_EVSE_2) as edge:
        async with station(edge) as sim:
            assert (await authorize(sim, "", "NoAuthorization"))["status"] == "Accepted"
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            assert (await authorize(sim, "", "NoAuthorization"))["status"] == "Invalid"


async def test_TC_C_06_CSMS_blocked_token_is_blocked(make_edge):
    """C01.FR.07: the blocked token's AuthorizeResponse says Blocked; the station refuses the driver."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            assert (await authorize(sim, "TAG-BLOCKED", "Central"))["status"] == "Blocked"
            await sim.plug_in(1)
            assert await sim.present_token(1, "TAG-BLOCKED") == "Blocked"
            assert sim.evses[1].tx is None and sim.evses[1].token is None


async def test_TC_C_07_CSMS_expired_token_is_expired(make_edge):
    """C01.FR.07: a token past its expiry is Expired (or Invalid); the answer carries no cache expiry in the
    future, so no station keeps it as valid."""
    async with make_edge(chargers=SITE_CHARGERS, extra=EXPIRED) as edge:
        async with station(edge) as sim:
            info = await authorize(sim, "TAG-EXPIRED", "ISO14443")
    assert info["status"] == "Expired"
    assert info["cache_expiry_date_time"].startswith("2020-01-01")


async def test_TC_C_08_CSMS_cached_token_is_accepted_in_the_transaction_event(make_edge):
    """C12.FR.03: a station that authorized from its cache sends no AuthorizeRequest; the CSMS checks the
    token in the TransactionEvent (triggerReason Authorized, eventType Updated) and answers Accepted."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("TxCtrlr", "TxStartPoint", "EVConnected")   # the transaction runs before the token
            cached(sim, "TAG-OK")
            await sim.plug_in(1)
            await sim.wait_event("transaction_started")
            assert await sim.present_token(1, "TAG-OK") == "Accepted"
            answer = await sim.wait_event("transaction_event_answer", count=2)
            assert answer["status"] == "Accepted"
            assert sim._latest["authorize"]["source"] == "local"          # no AuthorizeRequest was sent
            [tx] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert (tx["id_tag"], tx["auth_status"], tx["state"]) == ("TAG-OK", "Accepted", "active")
            assert sim.evses[1].tx is not None and sim.evses[1].token is not None   # charging goes on


async def test_TC_C_20_CSMS_token_invalid_at_the_csms_is_refused_in_the_transaction_event(make_edge):
    """C12.FR.03: a token the station's cache holds as Accepted but the CSMS does not know is answered Invalid
    in the TransactionEvent; the station de-authorizes and ends the transaction (StopTxOnInvalidId)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("TxCtrlr", "TxStartPoint", "EVConnected")
            cached(sim, "NOT-A-CARD")
            await sim.plug_in(1)
            await sim.wait_event("transaction_started")
            assert await sim.present_token(1, "NOT-A-CARD") == "Accepted"      # the cache said so
            answer = await sim.wait_event("transaction_event_answer", count=2)
            assert answer["status"] in ("Invalid", "Unknown")
            ended = await sim.wait_event("transaction_ended")
            assert ended["reason"] == "DeAuthorized"
            await sim.flush()
            await wait_for(lambda: edge.sessions.connectors.open_on(STATION, 1) == [], what="the session closed")
            [tx] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert (tx["id_tag"], tx["auth_status"], tx["stop_reason"]) == ("NOT-A-CARD", "Invalid", "DeAuthorized")


async def test_TC_C_37_CSMS_blocking_a_token_clears_the_station_cache(make_edge):
    """C11: the CSMS sends ClearCacheRequest (the station answers Accepted). The site sends it when a token is
    blocked, so a cached Accepted does not outlive the block; the token is then refused."""
    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True, extra=CACHE_ON) as edge:
        async with station(edge) as sim:
            await asyncio.wait_for(edge.local_lists.idle.wait(), 10)
            assert edge.local_lists.held[STATION]["status"] == "in-sync"
            assert sim.device.flag("AuthCacheCtrlr", "Enabled")        # as the site set it
            sim.local_auth.remember("ISO14443:TAG-OK", "Accepted")    # a cached Accepted from earlier
            await api_call(edge, "POST", "/tokens/tag-ok/block")
            await wait_for(lambda: requests(sim, "ClearCache"), what="ClearCache")
            assert requests(sim, "ClearCache") == [{"action": "ClearCache", "status": "Accepted"}]
            assert sim.local_auth.cache == {}
            assert (await authorize(sim, "TAG-OK"))["status"] == "Blocked"
        log = await edge.journal.read(Store.log, "actions", STATION, 100)
        [clear] = [a for a in log if a["action"] == "ClearCache"]
        assert clear["outcome"] == "ok" and "TAG-OK" in clear["reason"]


async def test_TC_C_38_CSMS_clear_cache_rejected_is_kept_as_rejected(make_edge):
    """C11: a station whose cache is disabled answers ClearCache Rejected; the CSMS takes the answer (the
    actions log says rejected) and the station stays connected and usable."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            sim.device.put("AuthCacheCtrlr", "Enabled", "false")
            result = await edge.control.clear_cache(STATION, actor="test", reason="TC_C_38")
            assert (result.outcome, result.response) == ("rejected", {"status": "Rejected"})
            assert (await authorize(sim, "TAG-OK"))["status"] == "Accepted"


async def test_TC_C_39_CSMS_group_id_authorizes_start_and_stop(make_edge):
    """C09.FR.02/03: two tokens of one group: every AuthorizeResponse and TransactionEventResponse carries
    Accepted and the same groupIdToken, so the second token may stop the first one's transaction."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            assert await authorize(sim, "TAG-2") == {"status": "Accepted", "group_id_token": GROUP}
            started = await transaction_event(sim, "Started", "Authorized", "tx-c39", token("TAG-OK"),
                                              charging_state="EVConnected")
            assert started == {"status": "Accepted", "group_id_token": GROUP}
            assert await authorize(sim, "TAG-2") == {"status": "Accepted", "group_id_token": GROUP}
            stopping = await transaction_event(sim, "Updated", "StopAuthorized", "tx-c39", token("TAG-2"))
            assert stopping == {"status": "Accepted", "group_id_token": GROUP}
            assert await transaction_event(sim, "Ended", "StopAuthorized", "tx-c39", token("TAG-2"),
                                           stopped_reason="Local") == {"status": "Accepted", "group_id_token": GROUP}
        [tx] = await edge.journal.read(Store.transactions, charger_id=STATION)
        assert (tx["id_tag"], tx["state"], tx["stop_reason"]) == ("TAG-OK", "completed", "Local")


@pytest.mark.parametrize("second_authorized", [False, True], ids=["TC_C_40", "TC_C_43"])
async def test_TC_C_40_and_TC_C_43_CSMS_group_id_with_the_local_list(make_edge, second_authorized):
    """C09 with the Local Authorization List: the list the CSMS sends gives both tokens their groupIdToken; a
    transaction started from the list is answered Accepted with the group; TC_C_43: the second token
    (Authorize, then StopAuthorized) too."""
    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True) as edge:
        async with station(edge) as sim:
            await asyncio.wait_for(edge.local_lists.idle.wait(), 10)
            assert edge.local_lists.held[STATION]["status"] == "in-sync" and sim.local_auth.version > 0
            log = await edge.journal.read(Store.log, "actions", STATION, 100)
            [sent] = [a for a in log if a["action"] == "SendLocalList"]
            entries = {e["idToken"]["idToken"]: e["idTokenInfo"]
                       for e in json.loads(sent["request"])["localAuthorizationList"]}
            assert entries["TAG-OK"]["groupIdToken"] == entries["TAG-2"]["groupIdToken"] == \
                {"idToken": "residents", "type": "Central"}
            started = await transaction_event(sim, "Started", "Authorized", "tx-c40", token("TAG-OK"),
                                              charging_state="EVConnected")
            assert started == {"status": "Accepted", "group_id_token": GROUP}
            if second_authorized:
                assert await authorize(sim, "TAG-2") == {"status": "Accepted", "group_id_token": GROUP}
                assert await transaction_event(sim, "Updated", "StopAuthorized", "tx-c40", token("TAG-2")) == \
                    {"status": "Accepted", "group_id_token": GROUP}


# -- the boundary: the idToken comes from the station ------------------------------------------------------

@given(value=st.text(max_size=36), kind=st.sampled_from([*TOKEN_TYPES, "NoAuthorization"]),
       status=st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]),
       expiry=st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc))),
       parent=st.one_of(st.none(), st.text("abcXYZ019._-", min_size=1, max_size=20)))
def test_every_decision_on_any_id_token_is_a_valid_authorize_response(value, kind, status, expiry, parent):
    """Whatever idToken a station sends and whatever the site decides, the answer is a 2.0.1 AuthorizeResponse
    its library takes (the schema), and the tag decided on is the token's value (NoAuthorization: free vend)."""
    tag = transactions.id_tag({"id_token": value, "type": kind}, "FREEVEND")
    assert tag == ("FREEVEND" if kind == "NoAuthorization" else value)
    decision = AuthDecision(status, "why", None, expiry.isoformat() if expiry else None, parent)
    info = transactions.id_token_info(decision)
    # As the library puts the handler's answer on the wire (ocpp.charge_point), then its 2.0.1 schema.
    answer = call_result.Authorize(id_token_info=info)
    payload = json.loads(json.dumps(snake_to_camel_case(remove_nones(serialize_as_dict(answer)))))
    assert ("group_id_token" in info) == bool(parent)
    _validate_payload(CallResult("1", payload, action="Authorize"), "2.0.1")


async def test_authorize_frames_at_the_boundary_are_answered_and_the_station_stays(make_edge):
    """Raw Authorize frames at the edges of the schema: the longest idToken, any Unicode, an empty
    NoAuthorization, each type: answered with an idTokenInfo; beyond the schema (37 characters, an unknown type,
    no type): a 2.0.1 CALLERROR, nothing decided, and the connection serves on."""
    from websockets.asyncio.client import connect

    from tests.edge.conftest import ocpp_url

    async def exchange(ws, unique_id: str, id_token: dict) -> list:
        await ws.send(json.dumps([2, unique_id, "Authorize", {"idToken": id_token}]))
        return json.loads(await ws.recv())

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with connect(ocpp_url(edge, STATION), subprotocols=["ocpp2.0.1"]) as ws:
            good = [{"idToken": "X" * 36, "type": "eMAID"}, {"idToken": "Zürich-€-\u0000-🚗", "type": "Local"},
                    {"idToken": "", "type": "NoAuthorization"}, {"idToken": "TAG-OK", "type": "MacAddress"}]
            for n, id_token in enumerate(good):
                answer = await exchange(ws, f"g{n}", id_token)
                assert answer[:2] == [3, f"g{n}"] and answer[2]["idTokenInfo"]["status"] in ("Accepted", "Invalid")
            assert answer[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": {"idToken": "residents",
                                                                                        "type": "Central"}}
            decided = len(await edge.journal.read(Store.authorizations, limit=100))
            bad = [{"idToken": "X" * 37, "type": "eMAID"}, {"idToken": "A", "type": "RFID"}, {"idToken": "A"}]
            for n, id_token in enumerate(bad):
                answer = await exchange(ws, f"b{n}", id_token)
                assert answer[0] == 4 and answer[1] == f"b{n}", answer
            assert len(await edge.journal.read(Store.authorizations, limit=100)) == decided
            assert (await exchange(ws, "again", {"idToken": "TAG-OK", "type": "ISO14443"}))[0] == 3
