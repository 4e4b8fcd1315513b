"""Sessions on a simulated charger become priced charge records, kept in the
journal, announced on the bus and served by the local API."""

from __future__ import annotations

import csv
import io
from decimal import Decimal as D

import pytest
from ocpp.v16 import call

from edge.clock import ManualClock
from tests.edge.cdr.helpers import START, next_cdr, record
from tests.edge.conftest import api_call, charger
from tests.stations import CHARGERS, VERSIONS, simulated_station

TARIFFS = '''
[charge_records]
currency = "EUR"
vat_percent = 19

[[tariffs]]
id = "standard"
type = "duration-energy"
connection_fee = 1.00
price_per_kwh = 0.30
price_per_minute = 0.05

[[tariffs]]
id = "residents"
type = "flat"
price_per_session = "2.50"
user_groups = ["residents"]

[[tariffs]]
id = "visitors-free"
type = "free"
ad_hoc = true

[[tariff_groups]]
id = "ac"
base = "standard"
tariffs = ["residents", "visitors-free"]
evses = ["CP-1"]
'''


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_session_becomes_a_priced_record(make_edge, version):
    """The same session on a 1.6 charger and on a 2.0.1 station is the same record: energy, times, tariff, token."""
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TARIFFS.replace('evses = ["CP-1"]', 'evses = ["CP-1", "CS-201"]'),
                         chargers=CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with simulated_station(version, edge, manual_clock=clock) as station:
            await station.plug_in(1)
            await station.start(1, "TAG-OK")
            clock.advance(1800)
            await station.meter()
            clock.advance(1800)
            await station.stop(1, "Local")
            summary = await next_cdr(records)
        cdr = await record(edge, summary["id"])
    assert (cdr["charger_id"], cdr["connector_id"], cdr["id_tag"], cdr["user_group"], cdr["authorization"]) == (
        station.id, 1, "TAG-OK", "residents", "token")
    assert (cdr["tariff_group"], cdr["tariff"], cdr["price_gross"], cdr["currency"]) == (
        "ac", "residents", "2.50", "EUR")
    assert (cdr["price_net"], cdr["vat"]) == ("2.10", "0.40")
    assert cdr["status"] == "Successful" and cdr["status_reasons"] == [] and cdr["flags"] == []
    assert cdr["start_time"] == "2026-06-01T06:00:00.000Z" and cdr["stop_time"] == "2026-06-01T07:00:00.000Z"
    assert cdr["duration_s"] == 3600 and cdr["charging_s"] == 3600 and cdr["idle_s"] == 0
    assert 21.9 < float(cdr["energy_kwh"]) < 22.1 and 21.9 < float(cdr["average_power_kw"]) < 22.1
    assert cdr["stop_reason"] == "Local" and cdr["stopped_by_edge"] is None
    assert summary["transaction_id"] == cdr["transaction_id"] and len(cdr["id"]) == 36


async def test_free_vend_gets_the_base_tariff_and_unknown_cards_the_ad_hoc_one(make_edge):
    clock = ManualClock(START)
    extra = TARIFFS + '''
[[charge_groups]]
id = "public"
policy = "free-vend"
evses = [{ charger = "CP-1", connector = 2 }]
'''
    async with make_edge(clock=clock, extra=extra) as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            for connector, tag, wh in ((2, "FREEVEND", 10_000), (2, "UNKNOWN-CARD", 5_000)):
                started = await cp.call(call.StartTransaction(connector_id=connector, id_tag=tag, meter_start=1000,
                                                              timestamp=clock.now_iso()))
                clock.advance(3600)
                await cp.call(call.StopTransaction(meter_stop=1000 + wh, timestamp=clock.now_iso(),
                                                   transaction_id=started.transaction_id, reason="EVDisconnected"))
                clock.advance(60)
            first, second = [await record(edge, (await next_cdr(records))["id"]) for _ in range(2)]
    # No restricted tariff admits free vend: the base applies.
    assert (first["authorization"], first["tariff"], first["price_gross"]) == ("free-vend", "standard", "7.00")
    assert first["user_group"] is None                                         # 1.00 + 10 x 0.30 + 60 x 0.05
    assert [c["kind"] for c in first["price_components"]] == ["connection-fee", "energy", "time"]
    assert (second["authorization"], second["tariff"], second["price_gross"]) == ("ad-hoc", "visitors-free", "0.00")


async def test_records_are_listed_exported_and_filtered_by_the_api(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TARIFFS, timezone="Europe/Berlin") as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            for day in range(3):
                started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                              timestamp=clock.now_iso()))
                clock.advance(7200)
                await cp.call(call.StopTransaction(meter_stop=7000, timestamp=clock.now_iso(),
                                                   transaction_id=started.transaction_id))
                await next_cdr(records)
                clock.advance(86_400 - 7200)
        everything = await api_call(edge, "GET", "/cdrs")
        assert [r["start_time"][:10] for r in everything] == ["2026-06-01", "2026-06-02", "2026-06-03"]
        one = await api_call(edge, "GET", f"/cdrs/{everything[1]['id']}")
        assert one["id"] == everything[1]["id"]
        await api_call(edge, "GET", "/cdrs/nope", expect=404)
        middle = await api_call(edge, "GET", "/cdrs?from=2026-06-02&to=2026-06-02")
        assert [r["id"] for r in middle] == [everything[1]["id"]]
        assert await api_call(edge, "GET", "/cdrs?charger=CP-2") == []
        assert len(await api_call(edge, "GET", "/cdrs?user_group=residents&status=Successful")) == 3
        bad = await api_call(edge, "GET", "/cdrs?status=Fine", expect=400)
        assert "Successful" in bad["error"]
        bad = await api_call(edge, "GET", "/cdrs?from=yesterday", expect=400)
        assert "yesterday" in bad["error"]
        text = await _text(edge, "/cdrs/export?from=2026-06-02T00:00:00%2B02:00")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2
    assert rows[0]["start"] == "2026-06-02T08:00:00+02:00" and rows[0]["stop"] == "2026-06-02T10:00:00+02:00"
    assert (rows[0]["energy_kwh"], rows[0]["duration_min"], rows[0]["price_gross"]) == ("7.000", "120.00", "2.50")
    assert D(rows[0]["price_net"]) + D(rows[0]["vat"]) == D(rows[0]["price_gross"])


async def _text(edge, path: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{edge.api.bound_port}/api/v1{path}",
                            headers={"Authorization": f"Bearer {edge.api._token}"}) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            return await resp.text()
