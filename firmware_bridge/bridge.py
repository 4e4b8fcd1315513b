"""The one place where a bridge's parts are built and run.

The long-running parts run under one TaskGroup: the wallbox loop (serial),
the edge connection (OCPP), systemd's watchdog and status line. A bug in any
of them ends the bridge with an error and systemd restarts it; a wallbox or
an edge that does not answer never does. SIGTERM stops it in order: the wallbox is
set to its default current (nobody follows the site's load while the bridge
is down), then the store closes. A running transaction resumes on restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import ocpp.messages

from edge import systemd
from edge.clock import Clock
from firmware_bridge import drivers
from firmware_bridge.config import BridgeConfig
from firmware_bridge.controller import Controller
from firmware_bridge.drivers.base import DriverError, SerialSettings, WallboxDriver
from firmware_bridge.edge_connection import EdgeConnection
from firmware_bridge.store import Store
from firmware_bridge.wallbox import WallboxLink

log = logging.getLogger(__name__)

SAFE_STOP_TIMEOUT = 3.0

# The ocpp library validates payloads on a worker thread by default; for a few
# messages a minute the check is cheaper than the thread (as in the edge).
ocpp.messages.ASYNC_VALIDATION = False


def make_driver(config: BridgeConfig) -> WallboxDriver:
    w = config.wallbox
    return drivers.create(w.protocol, SerialSettings(device=w.device, baud_rate=w.baud_rate,
                                                     reply_timeout=w.reply_timeout, attempts=w.attempts))


class Bridge:
    def __init__(self, config: BridgeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.store = Store(config.state_path)
        self.controller = Controller(config, self.store, self.clock)
        self.wallbox = WallboxLink(make_driver(config), self.controller, config.wallbox)
        self.edge = EdgeConnection(config, self.controller)
        self.watchdog = systemd.Watchdog(healthy=self.wallbox.healthy)
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                parts = [tasks.create_task(part, name=name) for name, part in (
                    ("wallbox", self.wallbox.run()), ("edge", self.edge.run()), ("watchdog", self.watchdog.run()),
                    ("systemd-status", self._status_line()))]
                systemd.ready()
                self.started.set()
                log.info("bridge %s ready: %s on %s, edge %s", self.config.charge_point.id,
                         self.config.wallbox.protocol, self.config.wallbox.device, self.edge.url)
                await self._stop.wait()
                systemd.stopping()
                log.info("bridge stopping")
                self.edge.stopping = True
                await self._make_safe(parts[0])
                for task in parts:
                    task.cancel()
        finally:
            self.store.close()
            log.info("bridge stopped")

    async def _make_safe(self, wallbox_task: asyncio.Task) -> None:
        wallbox_task.cancel()  # the loop must not set the current back while we lower it
        await asyncio.gather(wallbox_task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.wallbox.make_safe(), SAFE_STOP_TIMEOUT)
        except (DriverError, TimeoutError) as exc:
            log.warning("could not set the wallbox to its default current before stopping: %s", exc)
        finally:
            await self.wallbox.driver.close()

    async def _status_line(self) -> None:
        """`systemctl status firmware-bridge@...` shows what the bridge does."""
        wake = self.controller.changed.subscribe()
        shown = ""
        while True:
            c = self.controller
            line = (f"{c.status().status}, edge {'online' if c.online else 'offline'}, "
                    f"{c.store.queued()} queued" + (f", wallbox: {c.link_problem}" if c.link_problem else ""))
            if line != shown:
                systemd.status(line)
                shown = line
            wake.clear()
            await wake.wait()


async def run_bridge(config: BridgeConfig) -> None:
    """Run until SIGTERM/SIGINT."""
    bridge = Bridge(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bridge.stop)
    await bridge.run()
