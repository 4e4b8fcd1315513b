"""Shared bits of the charge-record integration tests: a manual clock the edge
and the simulated charger share, and waiting for records."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from edge.clock import ManualClock
from edge.events import Subscription
from edge.journal import Store
from simulator import electrics
from tests.edge.conftest import simulated

# 08:00 in Berlin on a summer Monday.
START = datetime(2026, 6, 1, 6, 0, tzinfo=timezone.utc)


def sim_clock(clock: ManualClock) -> dict[str, Any]:
    """The simulator's clocks on the edge's manual clock, its periodic meter values off:
    a test sends them when it has moved time on."""
    return {"clock": clock.monotonic, "wall_clock": clock.now, "meter_interval": 0}


async def send_meter_values(sim: Any) -> None:
    electrics.queue_meter_values(sim)
    await sim.flush()


async def next_cdr(sub: Subscription, timeout: float = 10.0) -> dict:
    """The next record made after `sub` subscribed (its summary from the bus)."""
    async def wait() -> dict:
        while True:
            event = await sub.get()
            if event.kind == "cdr.created":
                return event.data
    return await asyncio.wait_for(wait(), timeout)


async def record(edge: Any, cdr_id: str) -> dict:
    [row] = await edge.journal.read(Store.cdrs, cdr_id=cdr_id)
    return row


@contextlib.asynccontextmanager
async def charging(edge: Any, clock: ManualClock, tag: str = "TAG-OK", **car: Any) -> AsyncIterator[Any]:
    """The simulator as CP-1 on the edge's clock, a car plugged into connector 1 and its session started."""
    async with simulated(edge, **sim_clock(clock)) as sim:
        await sim.plug_in(1, **car)
        await sim.start_transaction(1, tag)
        yield sim
