"""The load: N simulated chargers, each with a car plugged in and a transaction running.

The chargers are the project's one simulator. The bench sends their
MeterValues and Heartbeats itself, through `sim.send`, so every round trip
can be timed; the simulators' own periodic loops are switched off, as a
central system would with ChangeConfiguration (0 = off), so nothing is sent
on top of the planned load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timezone
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from bench.measure import RoundTrips
from simulator import ConnectorState, NotConnected, SimulatedChargePoint

ID_TAG = "BENCH-TAG"
# Errors a charger counts and carries on after: the figures show them.
SEND_ERRORS = (NotConnected, OCPPError, TimeoutError)


class Fleet:
    def __init__(self, url: str, charger_ids: list[str], password: str) -> None:
        # meter_interval=0: the simulator samples nothing on its own.
        self.sims = [SimulatedChargePoint(cid, url, password=password, meter_interval=0, on_event=self._count)
                     for cid in charger_ids]
        # Failed connection attempts and lost connections: a server that is slow to
        # let chargers in, or drops them under load, shows here.
        self.connection_events = {"connect_failed": 0, "disconnected": 0}
        # Requests the server sent the chargers (configuration, local lists): set-up
        # work that must be over before the measured phases start.
        self.server_requests = 0
        self.last_server_request = time.monotonic()
        self._refused: list[str] = []
        self.transaction_ids: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []

    def _count(self, name: str, data: dict) -> None:
        if name in self.connection_events:
            self.connection_events[name] += 1
        elif name == "request":
            self.server_requests += 1
            self.last_server_request = time.monotonic()
        elif name == "transaction_id" and data.get("status") != "Accepted":
            self._refused.append(str(data.get("status")))

    async def connect(self, timeout: float) -> None:
        """Until every charger is connected and its BootNotification accepted."""
        self._tasks = [asyncio.create_task(sim.run(), name=sim.id) for sim in self.sims]
        accepted = [asyncio.create_task(sim.wait_accepted(timeout=None)) for sim in self.sims]
        await self._gather_or_fail(accepted, timeout, "accepted")

    async def start_transactions(self, timeout: float) -> None:
        """A car on connector 1 and a running transaction on every charger."""
        await self._gather_or_fail([asyncio.create_task(self._start_one(sim)) for sim in self.sims],
                                   timeout, "charging")
        if self._refused:
            raise RuntimeError(f"the server refused {len(self._refused)} transactions ({self._refused[0]}): "
                               f"MeterValues would not be transaction data")
        for sim in self.sims:
            self._heartbeats_from_bench(sim)

    def _heartbeats_from_bench(self, sim: Any) -> None:
        """Heartbeats come from the bench from now on (see the module doc)."""
        sim.config.change("HeartbeatInterval", "0")
        sim.reconfigure()

    def _heartbeat(self) -> Any:
        return call.Heartbeat()

    async def _start_one(self, sim: SimulatedChargePoint) -> None:
        await sim.wait_online(timeout=None)
        await sim.plug_in(1)
        self.transaction_ids[sim.id] = await sim.start_transaction(1, ID_TAG)

    async def quiet(self, seconds: float, timeout: float) -> None:
        """Until the server sent no request to any charger for `seconds` (its connect-time work is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_server_request < seconds:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server kept sending requests to the chargers for {timeout:.0f} s")
            await asyncio.sleep(0.2)

    async def _gather_or_fail(self, tasks: list[asyncio.Task], timeout: float, what: str) -> None:
        """Until all `tasks` are done; fails on the first error, a timeout, or a simulator that stopped."""
        everything = asyncio.gather(*tasks)
        done, _ = await asyncio.wait([everything, *self._tasks], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if everything in done and not everything.exception():
            return
        for task in tasks:  # on a failure, nobody waits for the others any more
            task.cancel()
        if everything in done:
            everything.result()  # raises the first charger's error
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await everything
        stopped = [t for t in self._tasks if t.done()]
        if stopped:  # run() only ends on a bug in the simulator
            stopped[0].result()
            raise RuntimeError(f"simulator {stopped[0].get_name()} stopped")
        late = sum(1 for t in tasks if t.cancelled())
        raise RuntimeError(f"{late} of {len(tasks)} chargers were not {what} after {timeout:.0f} s")

    async def steady(self, duration: float, meter_interval: float, heartbeat_interval: float) -> RoundTrips:
        """Each charger on its own schedule, start times spread evenly so the load is smooth."""
        trips = RoundTrips()
        start = time.monotonic() + 0.1
        count = len(self.sims)
        await asyncio.gather(*(
            self._periodic(sim, trips, start, start + duration, meter_interval, heartbeat_interval,
                           offset=i / count) for i, sim in enumerate(self.sims)))
        # A charger whose next message falls after the end stops early; the phase does not.
        await asyncio.sleep(max(0.0, start + duration - time.monotonic()))
        return trips

    async def _periodic(self, sim: SimulatedChargePoint, trips: RoundTrips, start: float, end: float,
                        meter_interval: float, heartbeat_interval: float, offset: float) -> None:
        # Absolute due times, so a slow answer delays one message, not the rest of the schedule.
        next_meter = start + offset * meter_interval
        next_heartbeat = start + offset * heartbeat_interval
        while True:
            due = min(next_meter, next_heartbeat)
            if due >= end:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if next_meter <= next_heartbeat:
                await self._timed(sim, self._meter_values(sim), trips)
                next_meter += meter_interval
            else:
                await self._timed(sim, self._heartbeat(), trips)
                next_heartbeat += heartbeat_interval

    async def flood(self, duration: float) -> RoundTrips:
        """Every charger sends MeterValues back to back: one request outstanding each, as OCPP allows."""
        trips = RoundTrips()
        end = time.monotonic() + duration
        await asyncio.gather(*(self._back_to_back(sim, trips, end) for sim in self.sims))
        return trips

    async def _back_to_back(self, sim: SimulatedChargePoint, trips: RoundTrips, end: float) -> None:
        while time.monotonic() < end:
            await self._timed(sim, self._meter_values(sim), trips, until=end)

    def _meter_values(self, sim: SimulatedChargePoint) -> Any:
        value = meter_value(sim.connector(1), sim.voltage, datetime.now(timezone.utc))
        return call.MeterValues(connector_id=1, meter_value=[value], transaction_id=self.transaction_ids[sim.id])

    async def _timed(self, sim: SimulatedChargePoint, payload: Any, trips: RoundTrips,
                     until: float | None = None) -> None:
        sent = time.monotonic()
        try:
            await sim.send(payload)
        except SEND_ERRORS as exc:
            trips.error(exc)
            if isinstance(exc, NotConnected):
                await asyncio.sleep(0.5)  # no busy loop while the simulator reconnects
            return
        answered = time.monotonic()
        if until is None or answered <= until:  # answers after the phase ended are not its throughput
            trips.add(answered - sent)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def meter_value(state: ConnectorState, voltage: float, at: datetime) -> dict:
    """What a three-phase wallbox typically samples (as the simulator's defaults do): current and
    voltage per phase, power, the energy register, SoC and the offered current: ten values."""
    def sampled(measurand: str, value: float, unit: str, phase: str | None = None, location: str = "Outlet") -> dict:
        item = {"value": f"{value:.1f}", "context": "Sample.Periodic", "measurand": measurand, "unit": unit,
                "location": location}
        if phase is not None:
            item["phase"] = phase
        return item

    values = [sampled("Current.Import", amps, "A", f"L{i}") for i, amps in enumerate(state.current, 1)]
    values += [sampled("Voltage", voltage, "V", f"L{i}-N") for i in range(1, 4)]
    values += [sampled("Power.Active.Import", state.power_w, "W"),
               sampled("Energy.Active.Import.Register", state.energy_wh, "Wh"),
               sampled("SoC", state.soc or 0.0, "Percent", location="EV"),
               sampled("Current.Offered", state.limit, "A")]
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"timestamp": stamp, "sampled_value": values}


def main(argv: list[str]) -> int:
    """`python -m bench fleet`: the cloud at fleet scale (bench/cloud_fleet.py); this module also holds
    the OCPP charger fleet that other benchmarks import."""
    from bench import cloud_fleet
    return cloud_fleet.main(argv)
