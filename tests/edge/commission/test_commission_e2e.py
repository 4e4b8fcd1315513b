"""Commissioning against the real edge, the real simulated SDM630 and simulated chargers,
with charger B wired with another rotation than its config says."""

from __future__ import annotations

import asyncio
import contextlib
from unittest import mock

from simulator.charge_point import SimulatedChargePoint
from simulator.meter import SimulatedMeter
from edge.cli import main
from edge.commission import runner
from tests.edge.conftest import api_call, site_toml
from tests.edge.dlm.test_closed_loop import Site, charge, config

CONFIGURED = {"A": (3, "RST", "L1"), "B": (3, "RST", "L1")}
ACTUAL = {"A": (3, "RST", "L1"), "B": (3, "STR", "L1")}     # B's L1 sits on the grid's L2


@contextlib.asynccontextmanager
async def miswired_site(make_edge, tmp_path=None):
    site = Site(ACTUAL)                     # the meter sees the cars through the real wiring
    meter = SimulatedMeter(site.currents)
    port = await meter.start_tcp()
    extra, chargers = config(f'transport = "tcp"\nhost = "127.0.0.1"\nport = {port}', CONFIGURED, limit=63)
    # The simulated cars follow a step within their 0.2 s ramp, inside the load manager's follow_time: the
    # margin for slower real cars (1 s) would be waited out at each of the rotation's steps.
    with mock.patch.object(runner, "SETTLE_MARGIN_S", 0.2):
        try:
            async with make_edge(extra=extra, chargers=chargers) as edge:
                url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
                site.sims = {cid: SimulatedChargePoint(cid, url, reconnect_delay=0.1, meter_interval=0.3,
                                                       ramp_seconds=0.2) for cid in ACTUAL}
                if tmp_path is not None:      # for edgectl: the config with the real ports
                    (tmp_path / "site.toml").write_text(site_toml(tmp_path, extra=extra, chargers=chargers).replace(
                        "[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
                tasks = [asyncio.create_task(s.run()) for s in site.sims.values()]
                try:
                    for s in site.sims.values():
                        await s.wait_accepted()
                    yield edge, site
                finally:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await meter.stop()


async def test_the_report_names_the_miswired_charger_and_the_corrected_line(make_edge, tmp_path, capsys):
    async with miswired_site(make_edge, tmp_path) as (edge, site):
        for cid, tag in (("A", "TAG-OK"), ("B", "TAG-2")):
            await charge(site.sims[cid], tag, car_phases=1)      # a 1-phase car shows the rotation
        report = await api_call(edge, "POST", "/commission", body={"detect_rotation": True})
        rotation = {r["charger_id"]: r for r in report["rotation"]}
        assert rotation["A"]["verdict"] == "ok" and rotation["A"]["moved"] == ["L1"]
        assert rotation["B"]["verdict"] == "mismatch" and rotation["B"]["moved"] == ["L2"]
        assert rotation["B"]["config_lines"] == ["[[chargers]]", 'id = "B"', 'rotation = "STR"']
        assert report["ok"] is False
        failing = [c["name"] for c in report["checks"] if c["status"] == "fail"]
        assert failing == ["charger B/1: rotation"]
        statuses = {c["name"]: c["status"] for c in report["checks"]}
        assert statuses["meter grid-meter: voltage"] == "pass"
        assert statuses["charger A: smart charging"] == "pass" and statuses["charger B: booted"] == "pass"
        # The steps went through the actions log, and the load manager has the cars again.
        actions = await api_call(edge, "GET", "/chargers/B/logs/actions?limit=50")
        assert {a["action"] for a in actions if a["actor"] == "edge:commission"} >= {
            "SetChargingProfile", "ClearChargingProfile", "GetConfiguration"}
        # The same through edgectl: a human report, the corrected line, exit 1.
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["commission", "--detect-rotation", "--config",
                                              str(tmp_path / "site.toml"), "--state-dir", str(tmp_path)])
        out = capsys.readouterr().out
        assert code == 1, out
        assert "FAIL  charger B/1: rotation" in out and 'rotation = "STR"' in out and "ok    charger A/1" in out


async def test_without_consent_nothing_is_stepped(make_edge):
    async with miswired_site(make_edge) as (edge, site):
        report = await api_call(edge, "POST", "/commission", body={})
        assert report["rotation"] == [] and report["ok"] is True, report
        actions = await api_call(edge, "GET", "/chargers/B/logs/actions?limit=50")
        assert not [a for a in actions if a["action"] == "SetChargingProfile" and a["actor"] == "edge:commission"]
