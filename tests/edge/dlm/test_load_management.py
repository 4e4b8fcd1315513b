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
