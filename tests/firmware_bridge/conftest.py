"""Fixtures for the firmware bridge: the simulated RAPI firmware on a real pty
null modem, the bridge on its other end, and (from the edge's tests) a real
edge on loopback to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from edge.events import Event
from firmware_bridge.bridge import Bridge
from firmware_bridge.config import BridgeConfig, parse_config
from simulator.rapi_firmware import WallboxRig, running_bridge, simulated_wallbox
from tests.edge.conftest import PASSWORD, PASSWORD_HASH, make_edge  # noqa: F401  (make_edge: the edge's fixture)

CP_ID = "WB-1"
BRIDGED = f"""
[[chargers]]
id = "{CP_ID}"
password_hash = "{PASSWORD_HASH}"
max_current = 32
phases = 1
"""
TIMEOUT = 5.0


def bridge_toml(device: Path, state_dir: Path, *, port: int = 9, extra_wallbox: str = "", interval: float = 0.2) -> str:
    """A bridge tuned for tests: short timeouts, quick retries, meter values every `interval` s."""
    return f"""
state_dir = "{state_dir}"
[charge_point]
id = "{CP_ID}"
[edge]
url = "ws://127.0.0.1:{port}/ocpp"
password = "{PASSWORD}"
response_timeout = 3
reconnect_max_interval = 0.2
[wallbox]
device = "{device}"
max_current = 32
default_current = 8
poll_interval = 0.05
reply_timeout = 0.1
attempts = 2
fault_after = 3
retry_max_interval = 0.1
{extra_wallbox}
[metering]
interval = {interval}
"""


@pytest.fixture
async def rig() -> AsyncIterator[WallboxRig]:
    # A short directory of our own: the pty symlinks' names stay short and readable in failures.
    with tempfile.TemporaryDirectory(prefix="rapi-") as directory:
        async with simulated_wallbox(directory, speed=60.0) as wallbox:
            yield wallbox


@pytest.fixture
def bridge_config(rig: WallboxRig, tmp_path: Path) -> Callable[..., BridgeConfig]:
    def make(**kwargs: Any) -> BridgeConfig:
        return parse_config(bridge_toml(rig.bridge_path, tmp_path / "bridge", **kwargs), "bridge.toml")
    return make


async def status_is(bridge: Bridge, status: str, error_code: str | None = None, timeout: float = TIMEOUT) -> None:
    """Until the bridge's connector 1 shows `status` (and `error_code`, when given)."""
    controller = bridge.controller

    def matches() -> bool:
        now = controller.status()
        return now.status == status and error_code in (None, now.error_code)
    try:
        await controller.wait_for(matches, timeout)
    except TimeoutError:
        raise AssertionError(f"status stayed {controller.status()}, expected {status} {error_code or ''}") from None


class EdgeEvents:
    """What the edge published, from the moment of subscribing; waits without sleeping."""

    def __init__(self, edge: Any) -> None:
        self.seen: list[Event] = []
        self._queue = edge.bus.subscribe()

    async def next(self, kind: str, where: Callable[[Event], bool] = lambda e: True,
                   timeout: float = TIMEOUT) -> Event:
        async def find() -> Event:
            while True:
                event = await self._queue.get()
                self.seen.append(event)
                if event.kind == kind and event.charger_id == CP_ID and where(event):
                    return event
        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind} event from {CP_ID}; saw "
                                 f"{[(e.kind, e.data.get('status')) for e in self.seen[-10:]]}") from None

    async def status(self, status: str, error_code: str = "NoError", connector_id: int = 1) -> Event:
        return await self.next("connector.status", lambda e: e.data["connector_id"] == connector_id
                               and e.data["status"] == status and e.data["error_code"] == error_code)


@pytest.fixture
def bridged_site(make_edge: Callable[..., Any], bridge_config: Callable[..., BridgeConfig]) -> Callable[..., Any]:
    """An edge that knows the bridged wallbox, and the bridge connected to it: (edge, events, bridge)."""
    @contextlib.asynccontextmanager
    async def start(**edge_options: Any) -> AsyncIterator[tuple[Any, EdgeEvents, Bridge]]:
        async with make_edge(chargers=BRIDGED, **edge_options) as edge:
            events = EdgeEvents(edge)
            async with running_bridge(Bridge(bridge_config(port=edge.ocpp.bound_port))) as bridge:
                yield edge, events, bridge
    return start
