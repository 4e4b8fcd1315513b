"""The reaction benchmark's clock: it starts at the first read that can show the edge the
overload, polled by the edge's own MeterPoller from the simulated SDM630 over Modbus TCP.

The SDM630 map is read in two requests per poll (voltages to powers, then frequency and
energies). A step that lands between them is served by the second read only, which carries
no currents: that poll cannot show it, and a clock started there charged the edge with a
whole meter period it could not have saved (one trial of 536.7 ms in docs/performance.md).
"""

from __future__ import annotations

import pytest

from bench.dlm_reaction import Site, WatchedMeter, site_toml
from edge.clock import Clock
from edge.config import parse_config
from edge.meters.poller import MeterPoller


class StepBetweenReads(Site):
    """Switches the building load on right after the poll's read of the currents."""

    def __init__(self) -> None:
        super().__init__(["RB01"])
        self.loud = self.fuse + 5.0      # no car here: the building alone takes the site over
        self.step_on_next_currents = False

    def served(self, currents: tuple[float, ...], with_currents: bool) -> None:
        super().served(currents, with_currents)
        if with_currents and self.step_on_next_currents:
            self.step_on_next_currents = False
            self.step()


@pytest.fixture
async def polled(tmp_path):
    """The site, and the edge's poller of its meter over Modbus TCP."""
    site = StepBetweenReads()
    meter = WatchedMeter(site)
    port = await meter.start_tcp()
    config = parse_config(site_toml(0, port, ["RB01"], 0.5), "bench.toml", state_dir=str(tmp_path)).meters[0]
    poller = MeterPoller(config, Clock())
    try:
        yield site, poller
    finally:
        poller.close()
        await meter.stop()


async def test_a_step_between_a_polls_two_reads_starts_the_clock_at_the_next_poll(polled) -> None:
    site, poller = polled
    site.step_on_next_currents = True
    raced = await poller.poll_once()
    assert raced is not None and max(raced.current) < site.fuse    # the edge could not see the step
    assert site.raced and site.sampled_at is None

    seen = await poller.poll_once()
    assert seen is not None and max(seen.current) > site.fuse
    assert site.sampled_at is not None and site.sampled_at >= site.stepped_at


async def test_a_step_before_the_poll_starts_the_clock_at_its_read_of_the_currents(polled) -> None:
    site, poller = polled
    site.step()
    reading = await poller.poll_once()
    assert reading is not None and max(reading.current) > site.fuse
    assert site.sampled_at is not None and not site.raced
