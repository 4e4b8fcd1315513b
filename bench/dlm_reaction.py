"""Reaction time: from the meter sample that shows an overload to the last charger holding its lower limit.

The real edge (edge.app.Edge, in this process, as the tests start it) with a
[[circuits]] grid connection, 20 simulated chargers (simulator.charge_point)
over WebSockets on loopback, each with a 16 A car charging at full speed, and
the grid meter:

- `modbus` (default): a simulated SDM630 (simulator.meter) over Modbus TCP on
  loopback, polled by the edge's own MeterPoller from a [[meters]] table. The
  clock starts when the meter serves the first read of the phase currents that
  are over the fuse, so the time includes the Modbus answer, the poller's
  checks, the evaluation, and every SetChargingProfile over OCPP. (A poll is
  two reads, voltages to powers and then frequency and energies; a step that
  lands between them is served by the second, which the edge does not take
  currents from: that poll cannot show it, and the clock waits for the next.)
- `direct`: the reading handed to the load manager in process (a MeterSource
  plus `meter_reading()`), without Modbus: the controller's own share.

Each trial: wait until every car is back at 16 A and its MeterValues say so,
then switch on a building load that takes the site over its limit, and time
until the last charger has received its lower TxProfile (the simulator's
"charging_profile" event). `times_s` is the edge's reaction, from the first
read that shows the step; `from_step_s` is what the fuse sees, from the step
itself, with the wait for the next poll (up to one meter period) in it. Everything runs on one event loop, chargers
included, as in the tests: the figure includes the chargers' own handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass
from typing import AsyncIterator

from edge.app import Edge
from edge.config import parse_config
from edge.dlm.phases import ROTATIONS, phase_map, to_site
from edge.heap import freeze_startup
from simulator.charge_point import SimulatedChargePoint
from simulator.meter import CURRENT, SimulatedMeter

ID_TAG = "BENCH-CAR"
CAR_AMPS = 16.0
QUIET = 20.0             # A per phase of building load between trials


def limits(chargers: int) -> tuple[float, float]:
    """(fuse, building load during a trial), A per phase, for `chargers` cars at
    16 A. Between trials the cars fit with 6 A each to spare: enough that the
    cars' own ramp back up, which their MeterValues report only later, is not
    taken for building load (that would lower them again). In a trial the
    building takes the site 4 A per car over its fuse, so every car must drop."""
    fuse = 22.0 * chargers + QUIET
    return fuse, fuse - 12.0 * chargers
TRIAL_TIMEOUT = 10.0
SETTLE_TIMEOUT = 60.0


def site_toml(ocpp_port: int, meter_port: int, charger_ids: list[str], meter_period: float) -> str:
    fuse, loud = limits(len(charger_ids))
    chargers = "".join(
        f'\n[[chargers]]\nid = "{cid}"\nmax_current = {CAR_AMPS:g}\nphases = 3\nrotation = "{ROTATIONS[i % 6]}"\n'
        for i, cid in enumerate(charger_ids))
    # change_interval and follow_time only pace increases, so the cars are back
    # up quickly between trials; a decrease goes out at once whatever they are.
    return f"""
[site]
id = "bench-dlm"
[ocpp]
host = "127.0.0.1"
port = {ocpp_port}
unknown_chargers = "reject"
[api]
host = "127.0.0.1"
port = 0
[authorization]
default_policy = "all-known"
push_local_lists = false
[[user_groups]]
id = "bench"
allow_concurrent = true
[[tokens]]
id_tag = "{ID_TAG}"
user_group = "bench"
[load_management]
margin = 1
change_interval = 1
follow_time = 1
[[meters]]
id = "grid-meter"
model = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = {meter_port}
period = {meter_period:g}
[[circuits]]
id = "grid"
limit = {fuse:g}
meter = "grid-meter"
failsafe_load = {loud:g}
{chargers}"""


@dataclass
class DirectReading:
    current: tuple[float, float, float]
    at: float


@dataclass(frozen=True)
class DirectConfig:
    period: float


class DirectMeter:
    """A MeterSource for the load manager (edge.dlm.manager), filled by the bench itself."""

    def __init__(self, period: float) -> None:
        self.latest: DirectReading | None = None
        self.config = DirectConfig(period)


class Site:
    """The building plus what the cars really draw: the grid meter's view."""

    def __init__(self, charger_ids: list[str]) -> None:
        self.base = QUIET
        self.fuse, self.loud = limits(len(charger_ids))
        self.sims: dict[str, SimulatedChargePoint] = {}
        self.maps = {cid: phase_map(3, ROTATIONS[i % 6]) for i, cid in enumerate(charger_ids)}
        self.armed = False
        self.stepped_at: float | None = None      # when the trial's building load came on
        self.sampled_at: float | None = None      # when the meter first showed the edge the overload
        self.raced = False                        # the step fell between one poll's two reads

    def currents(self) -> tuple[float, float, float]:
        total = [self.base] * 3
        for cid, sim in self.sims.items():
            for p, amps in enumerate(to_site(sim.connector(1).current, self.maps[cid])):
                total[p] += amps
        return (total[0], total[1], total[2])

    def step(self) -> None:
        """Switch on the trial's building load."""
        self.sampled_at, self.raced = None, False
        self.base = self.loud
        self.stepped_at = time.perf_counter()
        self.armed = True

    def served(self, currents: tuple[float, ...], with_currents: bool) -> None:
        """The Modbus meter answered a read; `with_currents`: the read covered the phase currents.
        Notes the first read that shows the edge the trial's overload."""
        if not self.armed or self.sampled_at is not None or max(currents) <= self.fuse:
            return
        if with_currents:
            self.sampled_at = time.perf_counter()
        else:
            self.raced = True   # the step came between the poll's two reads: this poll cannot show it


class WatchedMeter(SimulatedMeter):
    """The simulated SDM630, telling the site which reads carried the phase currents."""

    def __init__(self, site: Site) -> None:
        super().__init__(site.currents)
        self.site = site

    async def _on_access(self, function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None) -> None:
        await super()._on_access(function_code, start_address, address, count, registers, set_values)
        if function_code == 4 and set_values is None:
            self.site.served(self.currents, address <= CURRENT[0] and CURRENT[-1] + 2 <= address + count)


@contextlib.asynccontextmanager
async def running_site(chargers: int, meter_period: float) -> AsyncIterator[tuple[Edge, Site, dict]]:
    ids = [f"RB{i + 1:02d}" for i in range(chargers)]
    site = Site(ids)
    received: dict[str, float] = {}

    def listener(cid: str):
        def on_event(name: str, data: dict) -> None:
            if name == "charging_profile" and data.get("purpose") == "TxProfile":
                received[cid] = time.perf_counter()
        return on_event

    meter = WatchedMeter(site)
    meter_port = await meter.start_tcp()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dlm-") as state_dir:
            config = parse_config(site_toml(0, meter_port, ids, meter_period), "bench-dlm.toml", state_dir=state_dir)
            edge = Edge(config)
            task = await edge.start()
            freeze_startup()    # as the edge's own process does once it is ready (edge.app.run_edge)
            url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
            site.sims = {cid: SimulatedChargePoint(cid, url, reconnect_delay=0.2, meter_interval=1.0,
                                                   ramp_seconds=1.0, max_current=CAR_AMPS, phases=3,
                                                   on_event=listener(cid)) for cid in ids}
            sim_tasks = [asyncio.create_task(s.run()) for s in site.sims.values()]
            try:
                for sim in site.sims.values():
                    await sim.wait_accepted(timeout=30)
                for sim in site.sims.values():
                    await sim.plug_in(1, car_max_current=CAR_AMPS, car_phases=3, soc=10.0)
                    if await sim.authorize(ID_TAG) != "Accepted":
                        raise RuntimeError(f"{sim.id}: the bench's id tag was not accepted")
                    await sim.start_transaction(1, ID_TAG)
                # On a site the chargers live in processes of their own, not in the edge's heap.
                freeze_startup()
                yield edge, site, received
            finally:
                for t in sim_tasks:
                    t.cancel()
                await asyncio.gather(*sim_tasks, return_exceptions=True)
                edge.stop()
                await asyncio.wait_for(task, 30)
    finally:
        await meter.stop()


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _settle(site: Site, settle_s: float) -> None:
    """Until the site is steady: no charger's limit changed for `settle_s` (long
    enough for its MeterValues to report the draw), every car draws what it is
    offered, and every offer is high enough that the trial's load forces it down.
    (Offers may stop short of 16 A: a rise smaller than the hysteresis step is
    not sent.)"""
    floor = (site.fuse - site.loud) / len(site.sims) + 1.0

    def snapshot() -> tuple[float, ...]:
        return tuple(s.offered_current(1) for s in site.sims.values())

    def steady() -> bool:
        return all(offer >= floor and abs(max(s.connector(1).current) - offer) < 0.2
                   for s, offer in zip(site.sims.values(), snapshot()))
    deadline = time.perf_counter() + SETTLE_TIMEOUT
    while True:
        await _until(steady, max(0.1, deadline - time.perf_counter()),
                     f"the cars steady above {floor:.1f} A (offered now: {sorted(snapshot())}, "
                     f"grid meter {site.currents()})")
        before = snapshot()
        await asyncio.sleep(settle_s)
        if snapshot() == before and steady():
            return


async def measure(*, chargers: int = 20, trials: int = 30, path: str = "modbus", meter_period: float = 0.5,
                  progress=lambda text: None) -> dict:
    # The edge logs every profile it sends; a bench of hundreds of them does not need them on the terminal.
    logging.getLogger("edge").setLevel(logging.WARNING)
    times: list[float] = []
    from_step: list[float] = []
    raced = 0
    failures = 0
    async with running_site(chargers, meter_period) as (edge, site, received):
        manager = edge.load_manager
        if manager is None:
            raise RuntimeError("the edge has no load manager: no [[circuits]] in its config?")
        direct: DirectMeter | None = None
        feeder: asyncio.Task | None = None
        if path == "direct":
            direct = DirectMeter(meter_period)
            manager.meters["grid"] = direct

            async def feed() -> None:
                while True:
                    direct.latest = DirectReading(site.currents(), time.monotonic())
                    manager.meter_reading(direct.latest)
                    await asyncio.sleep(meter_period)
            feeder = asyncio.create_task(feed())
        elif not manager.meters:
            raise RuntimeError("the edge did not wire the [[meters]] poller to the load manager; use path 'direct'")
        try:
            for trial in range(trials):
                site.base = QUIET
                await _settle(site, settle_s=1.5)
                received.clear()
                site.step()
                if direct is not None:
                    reading = DirectReading(site.currents(), time.monotonic())
                    site.sampled_at = time.perf_counter()
                    direct.latest = reading
                    manager.meter_reading(reading)
                try:
                    await _until(lambda: site.sampled_at is not None and all(
                        received.get(cid, 0.0) >= site.sampled_at for cid in site.sims), TRIAL_TIMEOUT,
                        "every charger lowered")
                    told = max(received.values())
                    times.append(told - site.sampled_at)  # type: ignore[operator]
                    from_step.append(told - site.stepped_at)  # type: ignore[operator]
                    raced += site.raced
                    progress(f"reaction trial {trial + 1}/{trials}: {times[-1] * 1000:.1f} ms "
                             f"({from_step[-1] * 1000:.1f} ms from the step{', raced a poll' if site.raced else ''})")
                except TimeoutError:
                    failures += 1
                    progress(f"reaction trial {trial + 1}/{trials}: not every charger was lowered within "
                             f"{TRIAL_TIMEOUT:g} s")
                site.armed = False
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
    return {"times_s": times, "from_step_s": from_step, "raced_polls": raced, "failures": failures, "chargers": chargers, "trials": trials, "path": path,
            "meter_period_s": meter_period}
