"""Seed 004's auto-stop amount, acted out on a simulated charger: when a running session's price
reaches the tariff's `auto_stop_price`, the edge stops it (RemoteStopTransaction) and says why."""

from __future__ import annotations

from edge.clock import ManualClock
from edge.journal import Store
from tests.edge.cdr.helpers import START, charging, next_cdr, record, send_meter_values

AUTO_STOP = '''
[charge_records]
currency = "EUR"
vat_percent = 19

[[tariffs]]
id = "prepaid"
type = "duration-energy"
price_per_kwh = 0.40
auto_stop_price = 4.00          # 10 kWh at 0.40

[[tariff_groups]]
id = "ac"
base = "prepaid"
evses = ["CP-1"]
'''


async def test_the_edge_stops_a_session_whose_price_reached_the_auto_stop_amount(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=AUTO_STOP) as edge:
        records = edge.bus.subscribe()
        async with charging(edge, clock) as sim:
            clock.advance(1200)                 # 20 min at 22 kW: about 7.3 kWh x 0.40 = 2.93, under 4.00
            await send_meter_values(sim)
            clock.advance(900)                  # 35 min: about 12.8 kWh x 0.40 = 5.13, reached
            await send_meter_values(sim)
            stopped = await sim.wait_event("stop_transaction")
            cdr = await record(edge, (await next_cdr(records))["id"])
        [action] = [a for a in await edge.journal.read(Store.log, "actions", "CP-1")
                    if a["action"] == "RemoteStopTransaction"]
    assert stopped["reason"] == "Remote"
    assert action["actor"] == "edge:session-watch" and "reached the auto-stop amount 4.00" in action["reason"]
    assert "(tariff prepaid)" in cdr["stopped_by_edge"] and cdr["stop_reason"] == "Remote"
