"""Sessions the edge ends by itself, acted out on simulated chargers: tariff
limits (a RemoteStopTransaction), starts that never happen (Failed), silent
sessions (finish after inactivity) and chargers that reboot and forget."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

import pytest
from ocpp.v16 import call

from edge.cdr.tariffs import Tariff
from edge.cdr.watch import Running, Timeouts, due
from edge.clock import ManualClock
from edge.journal import Store
from simulator.charge_point import SimulatedChargePoint
from tests.edge.cdr.helpers import START, charging, next_cdr, record, send_meter_values, sim_clock
from tests.edge.conftest import PASSWORD, api_call, charger, simulated, wait_for

LIMITS = '''
[session_timeouts]
fail_start_after = 60
finish_after_inactivity = 120
reboot_grace = 30

[[tariffs]]
id = "capped"
type = "duration-energy"
price_per_kwh = 0.40
max_kwh = 10
max_minutes = 180

[[tariff_groups]]
id = "ac"
base = "capped"
evses = ["CP-1"]
'''


async def test_a_reading_checks_its_own_session_not_every_session(make_edge):
    """A meter reading moves its own session's energy and price only: it checks that session, not all the
    running ones (500 sessions at a reading every 10 s each made the watch a tenth of the edge's work:
    docs/performance.md). The others are still checked on the tick."""
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        watch = edge.session_watch
        asked: list[int | None] = []
        check = watch.check

        async def counted(only: int | None = None) -> None:
            asked.append(only)
            await check(only=only)
        watch.check = counted
        async with charging(edge, clock) as sim:
            tx = sim.connector(1).transaction_id
            await wait_for(lambda: tx in watch.running, what="the session watched")
            asked.clear()
            clock.advance(600)
            await send_meter_values(sim)
            await wait_for(lambda: tx in asked, what="the reading's session checked, by itself")


async def test_max_energy_stops_the_session_remotely(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with charging(edge, clock) as sim:
            clock.advance(1200)                 # 20 min at 22 kW: about 7.4 kWh, under the limit
            await send_meter_values(sim)
            clock.advance(900)                  # 35 min: about 12.9 kWh
            await send_meter_values(sim)
            stopped = await sim.wait_event("stop_transaction")
            cdr = await record(edge, (await next_cdr(records))["id"])
        [action] = [a for a in await edge.journal.read(Store.log, "actions", "CP-1")
                    if a["action"] == "RemoteStopTransaction"]
    assert stopped["reason"] == "Remote"
    assert action["actor"] == "edge:session-watch" and "max energy 10 kWh" in action["reason"]
    assert cdr["stop_reason"] == "Remote" and "max energy 10 kWh reached (tariff capped)" in cdr["stopped_by_edge"]
    assert cdr["stopped_by_edge"] in cdr["flags"] and cdr["status"] == "Successful"


async def test_max_time_stops_the_session_remotely(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with charging(edge, clock, car_max_current=6, car_phases=1) as sim:    # 1.4 kW: never 10 kWh
            for _ in range(3):
                clock.advance(3600)
                await send_meter_values(sim)
            await edge.session_watch.check()
            await sim.wait_event("stop_transaction")
            cdr = await record(edge, (await next_cdr(records))["id"])
    assert cdr["stop_reason"] == "Remote" and "max time 180 min" in cdr["stopped_by_edge"]
    assert cdr["duration_s"] == 3 * 3600


async def test_an_authorization_no_start_follows_is_recorded_failed(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with simulated(edge, **sim_clock(clock)) as sim:
            await sim.wait_online()
            assert await sim.authorize("TAG-OK") == "Accepted"      # ... and nobody plugs in
            await wait_for(lambda: edge.session_watch.attempts, what="the attempt")
            clock.advance(59)
            await edge.session_watch.check()
            assert edge.session_watch.attempts
            clock.advance(1)
            await edge.session_watch.check()
            cdr = await record(edge, (await next_cdr(records))["id"])
    assert (cdr["status"], cdr["transaction_id"], cdr["id_tag"], cdr["user_group"]) == (
        "Failed", None, "TAG-OK", "residents")
    assert cdr["status_reasons"] == ["no car plugged in within 60 s of the authorization; start discarded"]
    assert cdr["price_gross"] == "0.00" and cdr["start_time"] == "2026-06-01T06:00:00.000Z"


async def test_an_authorization_followed_by_a_start_is_not_failed(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with simulated(edge, **sim_clock(clock)) as sim:
            await sim.wait_online()
            assert await sim.authorize("TAG-OK") == "Accepted"
            await sim.plug_in(1)
            await sim.start_transaction(1, "TAG-OK")
            await wait_for(lambda: edge.session_watch.running and not edge.session_watch.attempts, what="the start")
            # Tapping the same card to stop is no new start either.
            assert await sim.authorize("TAG-OK") == "Accepted"
            await sim.stop_transaction(1, "Local", id_tag="TAG-OK")
            await wait_for(lambda: not edge.session_watch.running, what="the stop")
            clock.advance(120)
            await edge.session_watch.check()
            await next_cdr(records)       # the stop's record is written after the stop, not with it
        assert [r["status"] for r in await edge.journal.read(Store.cdrs)] == ["Exclusion"]    # 0 kWh, 0 min


async def test_a_remote_start_without_a_car_is_recorded_failed(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with charger(edge) as cp:     # accepts RemoteStartTransaction, and no car ever arrives
            result = await api_call(edge, "POST", "/chargers/CP-1/remote-start",
                                    body={"connector": 2, "token": "TAG-2"})
            assert result["outcome"] == "ok"
            await wait_for(lambda: edge.session_watch.attempts, what="the attempt")
            clock.advance(60)
            await edge.session_watch.check()
            cdr = await record(edge, (await next_cdr(records))["id"])
            assert cp.received[-1][0] == "RemoteStartTransaction"
    assert (cdr["status"], cdr["connector_id"], cdr["id_tag"]) == ("Failed", 2, "TAG-2")
    assert "within 60 s of the remote start" in cdr["status_reasons"][0]


async def test_a_silent_session_is_closed_after_inactivity(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS.replace("max_kwh = 10", "max_kwh = 100")
                         .replace("max_minutes = 180", "max_minutes = 1000")) as edge:
        records = edge.bus.subscribe()
        async with charging(edge, clock, car_max_current=16) as sim:
            clock.advance(1800)
            await send_meter_values(sim)        # the last sign of it: 30 min at 11 kW
            last = sim.connector(1).energy_wh
            await wait_for(lambda: all(r.last_values == clock.now() for r in edge.session_watch.running.values()),
                           what="the meter values")
            clock.advance(119 * 60)
            await edge.session_watch.check()
            assert edge.sessions.active()
            clock.advance(60)
            await edge.session_watch.check()
            cdr = await record(edge, (await next_cdr(records))["id"])
            assert not edge.sessions.active()
            assert sim.connector(1).transaction_id is not None     # the charger was not told anything
    assert cdr["stopped_by_edge"].startswith("finished after inactivity: no MeterValues for 120 min")
    assert cdr["stop_time"] == "2026-06-01T06:30:00.000Z" and cdr["meter_stop_wh"] == int(last)
    assert cdr["stop_reason"] == "Other" and cdr["stopped_by_edge"] in cdr["flags"]


async def test_a_charger_that_reboots_and_forgets_gets_its_session_closed(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        records = edge.bus.subscribe()
        async with charging(edge, clock, car_max_current=16) as sim:
            clock.advance(600)
            await send_meter_values(sim)
            last = sim.connector(1).energy_wh
        clock.advance(300)
        # The same charger comes back with no memory of the transaction, the car still plugged in: it
        # boots and says Preparing. (Available would end the session at once: the car is gone.)
        forgetful = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                         connectors=2, reconnect_delay=0.1, **sim_clock(clock))
        await forgetful.plug_in(1)
        task = asyncio.create_task(forgetful.run())
        try:
            await forgetful.wait_online()
            await wait_for(lambda: edge.session_watch._status.get(("CP-1", 1), ("", None))[1] == clock.now(),
                           what="the status after the boot")
            await edge.session_watch.check()
            assert edge.sessions.active()       # within the grace a queued StopTransaction may still come
            clock.advance(30)
            await edge.session_watch.check()
            cdr = await record(edge, (await next_cdr(records))["id"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert cdr["stopped_by_edge"].startswith("incomplete charge record: the charger rebooted at")
    assert cdr["meter_stop_wh"] == int(last) and cdr["stop_time"] == "2026-06-01T06:10:00.000Z"


async def test_a_reboot_that_keeps_the_transaction_closes_nothing(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        async with charging(edge, clock) as sim:
            # A reboot the charger survives with its transaction: a boot, then Charging again.
            await sim.send(call.BootNotification(charge_point_model="SimBox", charge_point_vendor="SimVendor"))
            await sim.sync_status(force=[1])
            clock.advance(600)
            await edge.session_watch.check()
            assert edge.sessions.active()


T = datetime(2026, 6, 1, 6, 0, tzinfo=timezone.utc)
RUN = Running(1, "CP-1", 1, "TAG", None, T, 1000, T, 1000)
CAPPED = Tariff("c", "duration-energy", max_minutes=60, max_kwh=5)   # type: ignore[arg-type]


@pytest.mark.parametrize("run, now, booted, status, expected", [
    (RUN, T + timedelta(minutes=59), None, None, None),
    (RUN, T + timedelta(minutes=60), None, None, "stop"),
    (RUN.__class__(**{**RUN.__dict__, "register_wh": 6000}), T, None, None, "stop"),
    (RUN.__class__(**{**RUN.__dict__, "register_wh": 6000, "stop_asked": T}), T + timedelta(seconds=59),
     None, None, None),                                                  # asked already: wait before asking again
    (RUN, T + timedelta(minutes=120), None, None, "close"),             # inactivity wins over the limit
    (RUN, T + timedelta(minutes=2), T + timedelta(minutes=1), None, "close"),
    (RUN, T + timedelta(minutes=2), T + timedelta(minutes=1), "Charging", None),
    (RUN, T + timedelta(seconds=61), T + timedelta(seconds=40), "Available", None),   # still in the grace
])
def test_due_is_a_pure_decision(run, now, booted, status, expected):
    action = due(run, CAPPED, now, Timeouts(reboot_grace=timedelta(seconds=60)), booted, status)
    assert (action[0] if action else None) == expected


async def test_running_sessions_are_watched_again_after_a_restart(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        async with charger(edge) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                          timestamp=clock.now_iso()))
            clock.advance(600)
            await cp.call(call.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=[
                {"timestamp": clock.now_iso(), "sampled_value": [{"value": "6000"}]}]))
    clock.advance(3 * 3600)         # the edge was off for hours: that silence is not the charger's
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        await wait_for(lambda: edge.session_watch.running, what="the running session")
        [run] = edge.session_watch.running.values()
        assert (run.transaction_id, run.register_wh, run.last_values) == (started.transaction_id, 6000, clock.now())
        await edge.session_watch.check()
        assert edge.sessions.active()


async def test_limits_are_those_of_the_tariff_the_session_started_under(make_edge):
    """The tariff changes mid-session (the cloud lifts max_kwh from 10 to 100): the driver started under
    10 kWh, so the watch stops at 10 kWh, as the record is priced under the pinned tariff too."""
    from edge.uplink.documents import tariffs_from
    from tests.edge.cdr.test_exact_money import _pinned

    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=LIMITS) as edge:
        async with charging(edge, clock) as sim:
            [tx] = edge.sessions.running()
            await _pinned(edge, tx)
            edge.charge_records.book = tariffs_from(
                {"tariffs": [{"id": "capped", "type": "duration-energy", "price_per_kwh": "0.40", "max_kwh": 100,
                              "max_minutes": 180}],
                 "tariff_groups": [{"id": "ac", "base": "capped", "evses": ["CP-1"]}]}, [], ["CP-1"])
            clock.advance(2100)                 # 35 min at 22 kW: about 12.9 kWh, over the pinned 10 kWh
            await send_meter_values(sim)
            stopped = await sim.wait_event("stop_transaction")
    assert stopped["reason"] == "Remote"
