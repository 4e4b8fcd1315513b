"""Load management end to end: the real edge, simulated chargers over OCPP,
charging profiles that the simulated cars follow."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from simulator.charge_point import SimulatedChargePoint
from tests.edge.conftest import api_call, wait_for

LM = """
[load_management]
tick = 0.2
margin = 0
change_interval = 1
follow_time = 0.5
tx_profile_duration = 60
series_interval = 1
meter_values_interval = 0.5
[[circuits]]
id = "grid"
limit = 40
"""


def chargers(*specs: str) -> str:
    return "\n".join(f"[[chargers]]\nid = \"{cid}\"\nmax_current = 32\n{extra}\n" for cid, extra in
                     (spec.split("|") if "|" in spec else (spec, "") for spec in specs))


@contextlib.asynccontextmanager
async def sims(edge, *ids: str, **kwargs) -> AsyncIterator[dict[str, SimulatedChargePoint]]:
    made = {cid: SimulatedChargePoint(cid, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", reconnect_delay=0.1,
                                      meter_interval=0.5, ramp_seconds=0.2, **kwargs) for cid in ids}
    tasks = [asyncio.create_task(s.run()) for s in made.values()]
    try:
        for s in made.values():
            await s.wait_accepted()
        yield made
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def charge(sim: SimulatedChargePoint, tag: str = "TAG-OK", **car) -> None:
    await sim.plug_in(1, **car)
    assert await sim.authorize(tag) == "Accepted"
    await sim.start_transaction(1, tag)


def offered(sim: SimulatedChargePoint) -> float:
    return sim.offered_current(1)


async def test_every_charger_gets_its_safe_share_as_default_profile(make_edge):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge, sims(edge, "A", "B") as s:
        for sim in s.values():
            assert (await sim.wait_event("charging_profile"))["purpose"] == "TxDefaultProfile"
        # 40 A shared by two EVSEs that could all start at once, with nobody watching.
        assert offered(s["A"]) == 20.0 and offered(s["B"]) == 20.0


async def test_two_cars_share_the_grid_connection(make_edge):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge, sims(edge, "A", "B") as s:
        await charge(s["A"])
        await wait_for(lambda: offered(s["A"]) == 32.0, what="A alone at its maximum")
        await charge(s["B"], "TAG-2")
        await wait_for(lambda: offered(s["A"]) == 20.0 and offered(s["B"]) == 20.0, what="an equal split")
        body = await api_call(edge, "GET", "/dlm")
        why = {(c["charger_id"], c["connector_id"]): c for c in body["connectors"]}
        assert why[("A", 1)]["limit"] == 20.0 and "circuit grid" in why[("A", 1)]["reason"]
        assert body["circuits"][0]["phases"][0]["allocated"] == 40.0
        await s["B"].stop_transaction(1)
        await wait_for(lambda: offered(s["A"]) == 32.0, what="A back to its maximum")


async def test_edgectl_dlm_shows_the_circuits_and_why_each_car_is_limited(make_edge, tmp_path, capsys):
    from edge.cli import main
    from tests.edge.conftest import site_toml

    toml = dict(extra=LM, chargers=chargers("A", "B"))
    async with make_edge(**toml) as edge, sims(edge, "A", "B") as s:
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path, **toml).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        await charge(s["A"])
        await charge(s["B"], "TAG-2")
        await wait_for(lambda: offered(s["A"]) == 20.0 and offered(s["B"]) == 20.0, what="an equal split")
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["dlm", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "strategy fair" in out
        row = next(line for line in out.splitlines() if line.startswith("A "))
        assert "20.0" in row and "limited by circuit grid" in row


async def test_the_per_phase_series_is_kept_in_the_journal(make_edge):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge, sims(edge, "A", "B") as s:
        await charge(s["A"])
        await wait_for(lambda: offered(s["A"]) == 32.0, what="A charging")
        rows = []
        while len(rows) < 6:   # two intervals of three phases
            await edge.load_manager.series.journal.read(lambda store: None)
            rows = await api_call(edge, "GET", "/dlm/series?circuit=grid")
            await asyncio.sleep(0.2)
        assert {r["phase"] for r in rows} == {1, 2, 3}
        assert rows[-1]["limit_a"] == 40.0 and rows[-1]["allocated"] == 32.0
        bad = await api_call(edge, "GET", "/dlm/series?since=yesterday", expect=400)
        assert "since" in bad["error"]


async def test_profiles_follow_what_the_charger_takes(make_edge):
    """A charger that only takes watts gets watts; stack levels above its maximum are lowered."""
    async with make_edge(extra=LM.replace("[load_management]", "[load_management]\nstack_level = 5"),
                         chargers=chargers("W")) as edge:
        sim = SimulatedChargePoint("W", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", reconnect_delay=0.1,
                                   meter_interval=0.5, ramp_seconds=0.2)
        sim.config.set("ChargingScheduleAllowedChargingRateUnit", "Power")
        sim.config.set("ChargeProfileMaxStackLevel", "3")
        task = asyncio.create_task(sim.run())
        try:
            default = await sim.wait_event("charging_profile")
            assert default["unit"] == "W" and default["stack_level"] == 3
            assert default["limits"] == [32 * 230 * 3]      # its safe share (its maximum, alone on 40 A), in W
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_dead_controller_leaves_the_charger_on_its_safe_share(make_edge):
    """The dead man's switch: TxProfiles run out unless renewed, and the charger
    falls back to its TxDefaultProfile by itself."""
    from datetime import datetime, timedelta, timezone

    skew = [timedelta(0)]

    def wall() -> datetime:
        return datetime.now(timezone.utc) + skew[0]
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge:
        url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
        a, b = (SimulatedChargePoint(cid, url, reconnect_delay=0.1, meter_interval=0.5, ramp_seconds=0.2,
                                     wall_clock=wall) for cid in ("A", "B"))
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        try:
            await a.wait_accepted()
            await b.wait_accepted()   # connected and idle: nothing held for it
            await charge(a)
            await wait_for(lambda: offered(a) == 32.0, what="A alone at its maximum")
            edge.stop()                                   # the controller dies
            await wait_for(lambda: a.link is None, what="the charger losing its central system")
            skew[0] = timedelta(seconds=61)               # the 60 s TxProfile has run out
            a.settle()
            assert offered(a) == 20.0                     # its safe share: 40 A over two EVSEs
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_full_car_keeps_only_its_minimum(make_edge):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge, sims(edge, "A", "B") as s:
        await charge(s["A"], soc=99.99)        # full within moments: SuspendedEV
        await charge(s["B"], "TAG-2")
        await wait_for(lambda: s["A"].connector(1).status == "SuspendedEV", timeout=10, what="A's car full")
        await wait_for(lambda: offered(s["A"]) == 6.0 and offered(s["B"]) == 32.0, timeout=10,
                       what="the full car's share going to B")
        body = await api_call(edge, "GET", "/dlm?charger=A")
        assert "takes about 0.0 A" in body["connectors"][0]["reason"]


async def test_a_composite_schedule_answer_is_recorded(make_edge):
    """GetCompositeSchedule answers carry Decimal limits; the actions log keeps them."""
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge, sims(edge, "A", "B") as s:
        await s["A"].wait_event("charging_profile")
        result = await edge.commands.send("A", "GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                                                         "chargingRateUnit": "A"},
                                          actor="tester", reason="composite")
        assert result.outcome == "ok", result
        assert result.response["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 20
