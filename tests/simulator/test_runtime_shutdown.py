"""A simulated station that is shutting down drops a request's follow-up quietly, as a real station losing
power would: before, `spawn` re-raised the task group's RuntimeError and the station's run ended with an
ExceptionGroup (a SetChargingProfile answered during a test's teardown failed the test, TC_K_48/TC_K_50 about
1 run in 10). The real 2.0.1 station against the tiny CSMS over real WebSockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.simulator.test_v201_station import Site, site, station  # noqa: F401 (fixtures)


async def test_a_follow_up_arriving_while_the_station_shuts_down_is_dropped_quietly(site: Site,
                                                                                  station: Any) -> None:
    sim = await station()
    ran: list[str] = []
    waiting = asyncio.Event()

    async def late_follow_up() -> None:
        ran.append("late")

    async def busy() -> None:
        # A follow-up in flight when the station shuts down; as it is cancelled, the next request's follow-up
        # comes in (the task group is aborting now and starts no task).
        try:
            waiting.set()
            await asyncio.Event().wait()
        finally:
            sim.spawn(late_follow_up)

    sim.spawn(busy)
    await waiting.wait()
    run = next(t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "SimulatedStation.run")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):     # ended by its cancellation, not by an ExceptionGroup
        await run
    assert ran == []
    assert [d["action"] for name, d in sim.events if name == "follow_up_dropped"] == ["late_follow_up"]
