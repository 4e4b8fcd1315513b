"""The over-the-limit alert through the real edge (issue 15, observation 6): a
real pymodbus meter whose building load alone exceeds the fuse, every car on it
already at 0 A. The edge says so in the log, the API, `edgectl dlm` and on the
bus (the uplink's alert.over_fuse), and says when it ends."""

from __future__ import annotations

import asyncio
import logging

from edge.cli import main
from edge.uplink.outbox import ALERT_TYPES
from tests.edge.conftest import site_toml, wait_for
from tests.edge.dlm.test_closed_loop import charge, closed_loop, offered, status

NOTHING_LEFT = "every car on it at 0 A; nothing left to shed"


async def next_over_fuse(events, active: bool):
    while True:
        event = await events.get()
        if event.kind == "dlm.over_fuse" and event.data["active"] is active:
            return event


async def edgectl_dlm(tmp_path, edge) -> None:
    # edgectl reads the API's address from the config and its token from the state dir.
    (tmp_path / "site.toml").write_text(
        site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
    code = await asyncio.to_thread(main, ["dlm", "--config", str(tmp_path / "site.toml"),
                                          "--state-dir", str(tmp_path)])
    assert code == 0


async def test_the_building_alone_over_the_fuse_is_alerted_until_it_ends(make_edge, tmp_path, capsys, caplog):
    async with closed_loop(make_edge, wiring={"A": (3, "RST", "L1")}) as (edge, site, meter):
        car = site.sims["A"]
        await charge(car, "TAG-OK")
        await wait_for(lambda: offered(car) >= 30.0, timeout=10, what="the car at full speed")
        events = edge.bus.subscribe()
        caplog.set_level(logging.WARNING, logger="edge.dlm.manager")

        site.base = [2.0, 43.0, 2.0]      # the building alone takes L2 over the 40 A fuse
        raised = await asyncio.wait_for(next_over_fuse(events, True), 10)
        assert offered(car) == 0.0
        data = raised.data
        assert (data["circuit"], data["phase"], data["limit"]) == ("grid", "L2", 40.0)
        assert data["peak"] >= 43.0 and data["lasted_s"] >= data["window_s"] and data["done"] == NOTHING_LEFT
        # follow_time 0.5 s + the meter's 0.2 s period + the edge's 0.5 s.
        assert data["window_s"] == 1.2
        assert ALERT_TYPES[raised.kind] == "alert.over_fuse"
        assert any(r.levelno == logging.ERROR and "over the limit circuit=grid L2" in r.getMessage()
                   and NOTHING_LEFT in r.getMessage() for r in caplog.records)

        phases = (await status(edge))["circuits"][0]["phases"]
        assert phases[0]["over"] is None and phases[2]["over"] is None
        assert phases[1]["over"]["alert"] and phases[1]["over"]["done"] == NOTHING_LEFT
        assert phases[1]["over"]["since"] == data["since"]
        capsys.readouterr()
        await edgectl_dlm(tmp_path, edge)
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("OVER THE LIMIT"))
        assert "circuit grid L2: over 40 A since" in line and "ALERT" in line and line.endswith(NOTHING_LEFT)

        site.base = [2.0, 2.0, 2.0]       # the building switches it off
        cleared = await asyncio.wait_for(next_over_fuse(events, False), 10)
        assert cleared.data["ended"] is not None and cleared.data["peak"] >= 43.0
        assert any(r.levelno == logging.WARNING and "over the limit ended circuit=grid L2" in r.getMessage()
                   for r in caplog.records)
        phases = (await status(edge))["circuits"][0]["phases"]
        assert all(p["over"] is None for p in phases)
        await wait_for(lambda: offered(car) >= 30.0, timeout=10, what="the car back at full speed")
