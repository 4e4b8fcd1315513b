"""A real edge and the simulated OCPP 2.0.1 station (simulator.v201) over real WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable

from edge.app import Edge
from tests.edge.conftest import PASSWORD_HASH

STATION = "CS-201"
# The 1.6 test site's chargers (CP-1 with its password, CP-2) and a configured 2.0.1 station.
SITE_CHARGERS = f"""
[[chargers]]
id = "CP-1"
password_hash = "{PASSWORD_HASH}"
connectors = 2

[[chargers]]
id = "CP-2"

[[chargers]]
id = "{STATION}"
connectors = 2
"""


@contextlib.asynccontextmanager
async def station(edge: Edge, station_id: str = STATION, *, accepted: bool = True,
                  configure: Callable[[Any], None] | None = None, **kwargs: Any) -> AsyncIterator[Any]:
    """The simulated 2.0.1 station, running (and, unless told otherwise, accepted by the edge);
    `configure(device_model)` changes its device model before it first connects."""
    from simulator.v201 import SimulatedStation

    kwargs.setdefault("evses", 2)
    sim = SimulatedStation(station_id, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", reconnect_delay=0.05,
                           ramp_seconds=0.2, **kwargs)
    if configure is not None:
        configure(sim.device)
    task = asyncio.create_task(sim.run())
    try:
        if accepted:
            await sim.wait_accepted()
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

