"""The CSV export never hands a spreadsheet a formula: an id tag is whatever a charger sent."""

import csv
import io

from ocpp.v16 import call

from edge.clock import ManualClock
from tests.edge.cdr.helpers import START, next_cdr, record
from tests.edge.cdr.test_records_flow import _text
from tests.edge.conftest import charger

HOSTILE = '=HYPERLINK("x","y")'     # 19 characters: a valid OCPP 1.6 idTag (CiString20)


async def test_a_formula_in_an_id_tag_is_exported_as_text(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock) as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag=HOSTILE, meter_start=0,
                                                          timestamp=clock.now_iso()))
            clock.advance(3600)
            await cp.call(call.StopTransaction(meter_stop=4000, timestamp=clock.now_iso(),
                                               transaction_id=started.transaction_id))
            cdr = await record(edge, (await next_cdr(records))["id"])
        assert cdr["id_tag"] == HOSTILE          # the record itself keeps what the charger sent
        text = await _text(edge, "/cdrs/export")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["id_tag"] == "'" + HOSTILE
    assert row["energy_kwh"] == "4.000" and not row["meter_start_wh"].startswith("'")
