"""Issue 13's OCPP observations, reproduced over real WebSockets against a
real edge: each bad value gets the OCPP-correct answer (or a logged repair),
never reaches SQLite or the bill, and costs no other charger anything."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from ocpp.v16 import call
from websockets.asyncio.client import connect

from edge.clock import parse_iso
from edge.journal import Store
from tests.edge.cdr.helpers import next_cdr, record
from tests.edge.conftest import charger, ocpp_url

# A time-of-day tariff: pricing walks the session's days, which is what
# overflowed on a start in year 1.
TOD_SITE = '''
[[tariffs]]
id = "tod"
type = "duration-energy-tod"
price_per_kwh = "0.45"
night_price_per_kwh = "0.25"
day_starts = "06:30"
night_starts = "22:00"
[[tariff_groups]]
id = "all"
base = "tod"
evses = ["CP-1", "CP-2"]
'''
UNSET_CLOCK = "0001-01-01T00:00:00Z"


async def raw(edge, charger_id: str = "CP-2"):
    """A charger speaking raw frames (CP-2 has no password and is accepted)."""
    return connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"])


async def exchange(ws, frame: str) -> list:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def call_frame(unique_id: str, action: str, payload: dict) -> str:
    return json.dumps([2, unique_id, action, payload])


def plausible(text: str) -> bool:
    moment = parse_iso(text)
    return moment is not None and moment.year >= 2015


async def test_charger_with_unset_clock_is_billed_at_arrival_times_and_edge_keeps_serving(make_edge):
    async with make_edge(extra=TOD_SITE) as edge:
        records = edge.bus.subscribe()
        before = datetime.now(timezone.utc)
        async with charger(edge, "CP-1") as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                          timestamp=UNSET_CLOCK))
            tx = started.transaction_id
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
                "timestamp": "0001-01-01T00:10:00Z",
                "sampledValue": [{"value": "2500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]))
            stop = await cp.call(call.StopTransaction(meter_stop=5000, timestamp="0001-01-01T00:30:00Z",
                                                      transaction_id=tx))
            assert stop is not None
            cdr = await record(edge, (await next_cdr(records))["id"])
            # The edge still answers this charger and another one.
            assert (await cp.call(call.Heartbeat())).current_time
            async with charger(edge, "CP-2", password=None) as other:
                assert (await other.call(call.Heartbeat())).current_time
        [row] = await edge.journal.read(Store.transactions)
        assert row["state"] == "completed"
        # The stored times are the edge's arrival times, never year 1.
        for stamp in (row["start_time"], row["stop_time"]):
            assert plausible(stamp) and parse_iso(stamp) >= before.replace(microsecond=0), stamp
        samples = await edge.journal.read(Store.samples, transaction_id=tx)
        assert samples and all(plausible(s["timestamp"]) for s in samples)
        assert cdr["energy_kwh"] == "4.000" and plausible(cdr["start_time"])
        # The bill says its times are the edge's, not the charger's.
        flags = "; ".join(cdr["flags"])
        assert "charger clock not set: its start time was replaced by the time the edge received it" in flags
        assert "charger clock not set: its stop time was replaced by the time the edge received it" in flags


async def test_a_retried_start_with_an_unset_clock_gets_the_same_transaction(edge):
    async with charger(edge, "CP-1") as cp:
        first = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                    timestamp=UNSET_CLOCK))
        await asyncio.sleep(0.01)       # the retry arrives later: its arrival time differs
        again = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                    timestamp=UNSET_CLOCK))
    assert again.transaction_id == first.transaction_id
    assert len(await edge.journal.read(Store.transactions)) == 1


async def test_huge_integers_get_a_constraint_error_while_another_charger_is_served(edge):
    bad_frames = {
        "m70": call_frame("m70", "StartTransaction", {"connectorId": 1, "idTag": "TAG-OK", "meterStart": 2 ** 70,
                                                      "timestamp": "2026-11-23T10:00:00Z"}),
        "c64": call_frame("c64", "StatusNotification", {"connectorId": 2 ** 64, "errorCode": "NoError",
                                                        "status": "Available"}),
        "t63": call_frame("t63", "StopTransaction", {"transactionId": 2 ** 63, "meterStop": 1,
                                                     "timestamp": "2026-11-23T10:00:00Z"}),
    }
    async with charger(edge, "CP-1") as good, await raw(edge) as bad:
        # All sent at the same moment: the bad writes must not share a fate with the good one.
        for frame in bad_frames.values():
            await bad.send(frame)
        status = asyncio.create_task(good.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                                                       status="Preparing")))
        answers = [json.loads(await asyncio.wait_for(bad.recv(), 5)) for _ in bad_frames]
        assert (await status) is not None
    by_id = {a[1]: a for a in answers}
    for unique_id in bad_frames:
        kind, _, code, description, details = by_id[unique_id]
        assert kind == 4 and code == "TypeConstraintViolation", by_id[unique_id]
        assert details["field"] in description and details["value"] in description
    assert by_id["m70"][4] == {"field": "meterStart", "value": str(2 ** 70)}
    assert await edge.journal.read(Store.transactions) == []
    assert await edge.journal.read(Store.unmatched_stops) == []
    connectors = {c["connector_id"]: c for c in await edge.journal.read(Store.connectors, "CP-1")}
    assert connectors[1]["status"] == "Preparing"
    assert await edge.journal.read(Store.connectors, "CP-2") == []


async def test_integers_outside_their_meaning_are_property_violations(edge):
    async with await raw(edge) as ws:
        for payload, field in (
                ({"connectorId": 0, "idTag": "TAG-OK", "meterStart": 0, "timestamp": "2026-11-23T10:00:00Z"},
                 "connectorId"),
                ({"connectorId": 1, "idTag": "TAG-OK", "meterStart": -5, "timestamp": "2026-11-23T10:00:00Z"},
                 "meterStart"),
                ({"connectorId": 101, "idTag": "TAG-OK", "meterStart": 0, "timestamp": "2026-11-23T10:00:00Z"},
                 "connectorId")):
            reply = await exchange(ws, call_frame("p", "StartTransaction", payload))
            assert reply[2] == "PropertyConstraintViolation" and reply[4]["field"] == field, reply
    assert await edge.journal.read(Store.transactions) == []


async def test_a_140_kb_timestamp_is_refused_and_never_stored(edge):
    huge = "2026-11-23T10:00:00" + "9" * 140_000 + "Z"
    async with await raw(edge) as ws:
        start = call_frame("big", "StartTransaction", {"connectorId": 1, "idTag": "TAG-OK", "meterStart": 0,
                                                       "timestamp": huge})
        reply = await exchange(ws, start)
        assert reply[:3] == [4, "big", "TypeConstraintViolation"]
        assert reply[4]["field"] == "timestamp" and len(json.dumps(reply)) < 1000    # not echoed back whole
        status = call_frame("st", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                         "status": "Available", "timestamp": "x" * 140_000})
        assert (await exchange(ws, status))[:3] == [4, "st", "TypeConstraintViolation"]
        assert (await exchange(ws, '[2,"ok","Heartbeat",{}]'))[0] == 3
    assert await edge.journal.read(Store.transactions) == []
    assert await edge.journal.read(Store.connectors, "CP-2") == []


async def test_json_nested_5000_deep_gets_formation_violation_and_connection_stays(edge):
    async with charger(edge, "CP-1") as good, await raw(edge) as ws:
        deep = '[2,"deep","DataTransfer",{"vendorId":"com.example","data":' + "[" * 5000 + "]" * 5000 + "}]"
        reply = await exchange(ws, deep)
        assert reply[:3] == [4, "deep", "FormationViolation"], reply
        unclosed = '[2,"open","Heartbeat",' + "{" * 5000
        assert (await exchange(ws, unclosed))[:3] == [4, "open", "FormationViolation"]
        # Brackets inside strings are text, not nesting.
        text = call_frame("txt", "DataTransfer", {"vendorId": "com.example", "data": "[" * 5000})
        assert (await exchange(ws, text))[:2] == [3, "txt"]
        assert (await exchange(ws, '[2,"ok","Heartbeat",{}]'))[:2] == [3, "ok"]
        assert (await good.call(call.Heartbeat())).current_time


async def test_lone_surrogate_strings_are_refused_before_sqlite(edge):
    async with await raw(edge) as ws:
        frame = '[2,"s1","StartTransaction",{"connectorId":1,"idTag":"\\ud800","meterStart":0,' \
                '"timestamp":"2026-11-23T10:00:00Z"}]'
        reply = await exchange(ws, frame)
        assert reply[:3] == [4, "s1", "FormationViolation"] and reply[4]["field"] == "idTag"
        assert (await exchange(ws, '[2,"ok","Heartbeat",{}]'))[0] == 3
    assert await edge.journal.read(Store.transactions) == []


async def test_bad_samples_are_left_out_and_the_stop_is_kept(edge):
    async with charger(edge, "CP-1") as cp:
        tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                  timestamp="2026-11-23T10:00:00Z"))).transaction_id
        samples = [{"value": "3000"}, {"value": "1e300"}, {"value": "NaN"}, {"value": "9" * 5000}]
        await cp.call(call.StopTransaction(meter_stop=3000, timestamp="2026-11-23T11:00:00Z", transaction_id=tx,
                                           transaction_data=[{"timestamp": "2026-11-23T11:00:00Z",
                                                              "sampledValue": samples}]))
    [row] = await edge.journal.read(Store.transactions)
    assert row["state"] == "completed"
    assert [s["value"] for s in await edge.journal.read(Store.samples, transaction_id=tx)] == [3000]


async def test_a_bug_meeting_a_frame_costs_that_call_an_internal_error_only(edge, monkeypatch):
    from edge.ocpp import key_case

    async def broken_authorize(*args, **kwargs):
        raise ZeroDivisionError("a bug of ours in a handler")

    # The library's key conversion, as the session calls it (edge/ocpp/key_case.py).
    translate = key_case.camel_to_snake_case

    def broken_library(data):
        if isinstance(data, dict) and data.get("idTag") == "LIBRARY-BUG":
            raise RecursionError("a bug in the library, before our handler")
        return translate(data)

    monkeypatch.setattr(key_case, "camel_to_snake_case", broken_library)
    async with charger(edge, "CP-1") as cp, await raw(edge) as ws:
        reply = await exchange(ws, call_frame("lib", "Authorize", {"idTag": "LIBRARY-BUG"}))
        assert reply[:3] == [4, "lib", "InternalError"]
        with monkeypatch.context() as patch:
            patch.setattr(edge.ocpp.site.sessions, "authorize", broken_authorize)
            assert (await exchange(ws, call_frame("h", "Authorize", {"idTag": "TAG-OK"})))[:3] == \
                [4, "h", "InternalError"]
        # The same connection, and everyone else, carry on.
        assert (await exchange(ws, call_frame("b", "Authorize", {"idTag": "TAG-OK"})))[:2] == [3, "b"]
        assert (await cp.call(call.Heartbeat())).current_time
