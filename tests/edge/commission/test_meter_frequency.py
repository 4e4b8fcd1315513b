"""The commissioning frequency check against the real edge polling the real simulated SDM630
(pymodbus over TCP): 50 Hz passes; the same meter at 48.7 Hz fails and says by how much."""

from __future__ import annotations

import math

from tests.edge.conftest import api_call, wait_for
from tests.edge.dlm.test_closed_loop import closed_loop


def frequency_check(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "meter grid-meter: frequency")


async def test_the_grid_frequency_is_read_from_the_meter_and_checked_against_its_band(make_edge):
    async with closed_loop(make_edge, wiring={"A": (3, "RST", "L1")}) as (edge, site, meter):
        poller = edge.meters["grid-meter"]
        await wait_for(lambda: poller.latest is not None, what="a first reading")
        report = await api_call(edge, "POST", "/commission", body={})
        check = frequency_check(report)
        assert check["status"] == "pass" and check["detail"] == "50.00 Hz", check
        assert report["ok"] is True, report

        meter.frequency = 48.7          # the grid (or an island's generator) off its band
        await wait_for(lambda: poller.latest.frequency is not None
                       and math.isclose(poller.latest.frequency, 48.7, rel_tol=1e-6), what="48.7 Hz read")
        report = await api_call(edge, "POST", "/commission", body={})
        check = frequency_check(report)
        assert check["status"] == "fail" and check["detail"] == "48.70 Hz is outside 49.5-50.5 Hz", check
        assert report["ok"] is False
        assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["meter grid-meter: frequency"]
