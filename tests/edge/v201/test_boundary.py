"""The OCPP 2.0.1 boundary: the shared protections (edge/ocpp/boundary.py) and 2.0.1's
own bounds and error names, seen on the wire by a raw 2.0.1 client over a real WebSocket."""

from __future__ import annotations

import json
from itertools import count

from hypothesis import given, strategies as st
from ocpp.exceptions import OCPPError
from websockets.asyncio.client import connect

from edge.journal import Store
from edge.ocpp import boundary
from edge.ocpp.v201 import translate
from tests.edge.conftest import ocpp_url
from tests.edge.v201.conftest import SITE_CHARGERS, STATION

_ids = count()
NOW = "2026-12-06T10:00:00Z"


async def exchange(ws, frame: str | list) -> list:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await ws.recv())


def status(evse_id=1, connector_id=1, connector_status="Available", timestamp=NOW) -> list:
    return [2, f"s{next(_ids)}", "StatusNotification", {"timestamp": timestamp, "connectorStatus": connector_status,
                                                       "evseId": evse_id, "connectorId": connector_id}]


async def test_pending_station_may_send_only_its_boot(make_edge):
    """B02.FR: while Pending, anything but BootNotification is refused with SecurityError."""
    async with make_edge(unknown="pending", chargers=SITE_CHARGERS) as edge:
        async with connect(ocpp_url(edge, "NEW-201"), subprotocols=["ocpp2.0.1"]) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            boot = await exchange(ws, [2, "b1", "BootNotification", {
                "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}])
            assert boot[0] == 3 and boot[2]["status"] == "Pending" and boot[2]["interval"] > 0
            refused = await exchange(ws, [2, "h1", "Heartbeat", {}])
            assert refused[:3] == [4, "h1", "SecurityError"] and "Pending" in refused[3]
            refused = await exchange(ws, status())
            assert refused[2] == "SecurityError"
        assert await edge.journal.read(Store.connectors, "NEW-201") == []


async def test_bad_frames_get_201_errors_and_nothing_is_stored(make_edge):
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with connect(ocpp_url(edge, STATION), subprotocols=["ocpp2.0.1"]) as ws:
            # Not OCPP-J at all: 2.0.1 calls 1.6's FormationViolation FormatViolation.
            assert (await exchange(ws, "not json"))[2] == "FormatViolation"
            deep = '[2, "d1", "Heartbeat", {"a": ' + "[" * 40 + "]" * 40 + "}]"
            assert (await exchange(ws, deep))[:3] == [4, "d1", "FormatViolation"]
            # 2.0.1's EVSE bounds: EVSEs and their connectors count from 1, and not to a thousand.
            for evse_id, connector_id, where in ((1000, 1, "evseId"), (0, 1, "evseId"), (1, 0, "connectorId")):
                refused = await exchange(ws, status(evse_id, connector_id))
                assert refused[2] == "PropertyConstraintViolation" and refused[4]["field"] == where, refused
            # The shared integer bound: outside int64 is not an integer of the protocol.
            assert (await exchange(ws, status(2 ** 70)))[2] == "TypeConstraintViolation"
            # A 1.6 word is not a 2.0.1 status: the 2.0.1 schema refuses it.
            assert (await exchange(ws, status(connector_status="Charging")))[0] == 4
            # A 2.0.1 action the edge does not take yet, and one 2.0.1 does not have.
            unsupported = await exchange(ws, [2, "n1", "NotifyDisplayMessages", {"requestId": 1}])
            assert unsupported[:3] == [4, "n1", "NotSupported"] and "ocpp-201.md" in unsupported[3]
            assert (await exchange(ws, [2, "n2", "StartTransaction", {}]))[2] == "NotImplemented"
            assert await edge.journal.read(Store.connectors, STATION) == []

            # An unset clock (1970) is repaired to the arrival time, as for 1.6, and the status kept.
            ok = await exchange(ws, status(2, timestamp="1970-01-01T00:00:00Z"))
            assert ok[0] == 3
            [row] = await edge.journal.read(Store.connectors, STATION)
            assert row["connector_id"] == 2 and not row["charger_time"].startswith("1970"), row
            # Still connected and served.
            assert (await exchange(ws, [2, "h2", "Heartbeat", {}]))[0] == 3


@given(st.integers(min_value=-(2 ** 80), max_value=2 ** 80))
def test_evse_id_bounds(evse_id):
    payload = {"timestamp": NOW, "connectorStatus": "Available", "evseId": evse_id, "connectorId": 1}
    try:
        checked = translate.check_call("StatusNotification", payload, NOW)
    except OCPPError as error:
        assert not 1 <= evse_id <= boundary.MAX_CONNECTOR_ID
        assert error.details["field"] == "evseId"
    else:
        assert 1 <= evse_id <= boundary.MAX_CONNECTOR_ID and checked.payload == payload


STATUS_201 = st.sampled_from(sorted(translate.STATUSES))


@given(st.dictionaries(st.integers(1, 4), STATUS_201, min_size=1, max_size=4))
def test_an_evse_reads_as_its_most_telling_connector(connectors):
    reported = translate.evse_status(connectors)
    assert reported in connectors.values()
    if len(connectors) == 1:
        assert reported == next(iter(connectors.values()))
    if "Occupied" in connectors.values():
        assert reported == "Occupied"       # in use: never offered to another driver
    elif "Available" in connectors.values():
        assert reported in ("Available", "Reserved")
