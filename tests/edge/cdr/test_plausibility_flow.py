"""Every plausibility status, and bad meter input, from real OCPP exchanges
with the edge: what a charger sends decides the record's status and flags,
the record is always kept and its price is never negative."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from ocpp.v16 import call

from edge.clock import ManualClock, iso
from edge.journal import Store
from tests.edge.cdr.helpers import START, next_cdr, record
from tests.edge.conftest import PASSWORD_HASH, charger

SITE = '''
[[tariffs]]
id = "standard"
type = "duration-energy"
connection_fee = 0.50
price_per_kwh = 0.30

[[tariff_groups]]
id = "all"
base = "standard"
evses = ["CP-1", "DC-1"]
'''
CHARGERS = f'''
[[chargers]]
id = "CP-1"
password_hash = "{PASSWORD_HASH}"
connectors = 2

[[chargers]]
id = "DC-1"
max_current = 500
'''
NOW = START


def at(minutes: float) -> str:
    return iso(NOW + timedelta(minutes=minutes))


# (charger, start minute, stop minute, meter start, meter stop): the charger's own times and readings.
CASES = {
    "plausible": ("CP-1", 0, 60, 1000, 11_000, "Successful", None),
    "start in the future": ("CP-1", 60, 120, 1000, 11_000, "Error", "start time in the future"),
    "negative energy": ("CP-1", 0, 60, 11_000, 1000, "Error", "negative energy consumption"),
    "negative duration": ("CP-1", 0, -10, 1000, 2000, "Error", "negative session duration"),
    "power above the EVSE": ("CP-1", 0, 60, 1000, 31_000, "Error", "power implausible for EVSE"),
    "too little energy": ("CP-1", 0, 60, 1000, 1100, "Exclusion", "consumption too low"),
    "too much energy": ("DC-1", 0, 15 * 60, 0, 5_001_000, "Exclusion", "consumption too high"),
    "too short": ("CP-1", 0, 0.8, 1000, 1300, "Exclusion", "charging duration too short"),
    "too long": ("CP-1", 0, 15 * 24 * 60, 1000, 101_000, "Exclusion", "charging duration too long"),
}


@pytest.mark.parametrize("case", CASES)
async def test_each_status_from_a_real_exchange(make_edge, case):
    charger_id, begin, end, meter_start, meter_stop, status, reason = CASES[case]
    async with make_edge(clock=ManualClock(NOW), extra=SITE, chargers=CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with charger(edge, charger_id, password=None if charger_id == "DC-1" else "s3cret-charger-pass") as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=meter_start,
                                                          timestamp=at(begin)))
            await cp.call(call.StopTransaction(meter_stop=meter_stop, timestamp=at(end),
                                               transaction_id=started.transaction_id))
            cdr = await record(edge, (await next_cdr(records))["id"])
    assert cdr["status"] == status
    assert (reason is None and cdr["status_reasons"] == []) or any(reason in r for r in cdr["status_reasons"])
    assert D(cdr["price_computed_gross"]) >= D("0.50")   # never negative: at least the connection fee
    # Error and Exclusion records are not billed: their price fields are 0, what the tariff gives is kept.
    billed = status == "Successful"
    assert cdr["billed"] is billed
    assert cdr["price_gross"] == (cdr["price_computed_gross"] if billed else "0.00")
    assert (cdr["price_net"], cdr["vat"]) != ("0.00", "0.00") if billed else (cdr["price_net"], cdr["vat"]) == (
        "0.00", "0.00")
    assert D(cdr["energy_kwh"]) == D(meter_stop - meter_start) / 1000


async def test_the_same_session_recorded_twice_is_a_duplicate(make_edge):
    async with make_edge(clock=ManualClock(NOW), extra=SITE, chargers=CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            # A charger replays a session under another id tag: a new transaction to OCPP, the same charge.
            for tag in ("TAG-OK", "TAG-2"):
                started = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=1000,
                                                              timestamp=at(0)))
                await cp.call(call.StopTransaction(meter_stop=9000, timestamp=at(60),
                                                   transaction_id=started.transaction_id))
            first, second = [await record(edge, (await next_cdr(records))["id"]) for _ in range(2)]
        assert len(await edge.journal.read(Store.cdrs)) == 2                # kept, not dropped
    assert first["status"] == "Successful"
    assert second["status"] == "Error" and second["status_reasons"] == [
        f"session data already exists (record {first['id']})"]


def reading(minute: float, value: str, unit: str | None = "Wh", context: str = "Sample.Periodic") -> dict:
    sampled = {"value": value, "measurand": "Energy.Active.Import.Register", "context": context}
    if unit:
        sampled["unit"] = unit
    return {"timestamp": at(minute), "sampled_value": [sampled]}


async def test_bad_meter_values_are_flagged_never_crash_never_negative(make_edge):
    async with make_edge(clock=ManualClock(NOW), extra=SITE, chargers=CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                          timestamp=at(0)))
            tx = started.transaction_id
            for minute, value, unit in ((10, "3000", "Wh"), (20, "2500", "Wh"), (11, "7900", "Wh"),
                                        (15, "4000", None), (40, "6.0", "Wh"), (45, "6.5", "kWh"),
                                        (50, "7000", "kWh"), (55, "oops", "Wh"), (58, "90000", "Wh")):
                await cp.call(call.MeterValues(connector_id=1, transaction_id=tx,
                                               meter_value=[reading(minute, value, unit)]))
            await cp.call(call.StopTransaction(meter_stop=8000, timestamp=at(60), transaction_id=tx,
                                               transaction_data=[reading(60, "7500", context="Transaction.End")]))
            cdr = await record(edge, (await next_cdr(records))["id"])
    flags = "\n".join(cdr["flags"])
    for expected in ("arrived out of order", "(2500 Wh) is below the previous 4000 Wh (meter went backwards)",
                     "jumps 4900 Wh in 60 s", "(90000 Wh) is above meterStop",
                     "looks like kWh sent as Wh; read as 6000 Wh",
                     "looks like Wh sent as kWh; read as 7000 Wh",
                     "Transaction.End register 7500 Wh differs from meterStop 8000 Wh"):
        assert expected in flags, flags
    assert cdr["status"] == "Successful" and cdr["energy_kwh"] == "7.000"
    assert cdr["price_gross"] == "2.60"                  # 0.50 + 7 kWh x 0.30
