"""Fixtures: a recording bare central system on a loopback port, and simulators connected to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import Server

from simulator import SimulatedChargePoint
from simulator.bare_central_system import BareCentralSystem, Received, serve_bare

FAST = {"meter_interval": 0.1, "ramp_seconds": 0.3, "reconnect_delay": 0.05}


@dataclass
class Central:
    system: BareCentralSystem
    server: Server
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def restart(self) -> None:
        self.server = await serve_bare("127.0.0.1", self.port, central_system=self.system)

    def messages(self, action: str | None = None) -> list[Received]:
        return self.system.messages(action)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 3.0) -> None:
        await self.system.wait_for(predicate, timeout)

    async def call(self, payload: Any, charge_point_id: str = "CP1") -> Any:
        return await self.system.call(charge_point_id, payload)

    def statuses(self, connector_id: int) -> list[str]:
        return [m.payload["status"] for m in self.messages("StatusNotification")
                if m.payload["connectorId"] == connector_id]


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    system = BareCentralSystem()
    server = await serve_bare("127.0.0.1", 0, central_system=system)
    central = Central(system, server, server.sockets[0].getsockname()[1])
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture
async def start_sim(central: Central) -> AsyncIterator[Callable[..., Awaitable[SimulatedChargePoint]]]:
    """Start a simulator against `central` (fast intervals) and wait until it is online."""
    runs: list[asyncio.Task] = []

    async def start(charge_point_id: str = "CP1", *, online: bool = True, **kwargs: Any) -> SimulatedChargePoint:
        sim = SimulatedChargePoint(charge_point_id, kwargs.pop("url", central.url), **{**FAST, **kwargs})
        runs.append(asyncio.create_task(sim.run()))
        if online:
            await sim.wait_online(5)
        return sim

    yield start
    for run in runs:
        run.cancel()
    for run in runs:
        try:
            await run  # a simulator that crashed fails the test here
        except asyncio.CancelledError:
            pass
