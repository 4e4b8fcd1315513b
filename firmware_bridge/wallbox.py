"""The loop that keeps the wallbox in step with the controller, over a driver.

Each cycle reads the wallbox, lets the controller decide, and sets the
current and mode it wants (current first, so a vehicle never sees more
than the limit, even for a moment). It runs every poll interval, at once
when the wallbox announces a change, and at once when the edge changed
something.

Any serial trouble (no answer, garbage, the adapter gone) closes the port
and opens it again after a pause that doubles up to `retry_max_interval`;
after `fault_after` failed cycles in a row the controller reports the
connector Faulted. Whatever the wallbox does, this loop does not end.
"""

from __future__ import annotations

import asyncio
import logging
import time

from firmware_bridge.config import WallboxSection
from firmware_bridge.controller import Controller
from firmware_bridge.drivers.base import DriverError, WallboxDriver

log = logging.getLogger(__name__)


class WallboxLink:
    def __init__(self, driver: WallboxDriver, controller: Controller, settings: WallboxSection) -> None:
        self.driver, self.controller, self.settings = driver, controller, settings
        self.connected = False
        self.failures = 0
        self.cycles = 0  # completed, for tests
        self.turned = time.monotonic()  # the last time the loop went round, well or not
        # What we last asked for and what the wallbox made of it: a wallbox that
        # clamps 32 A to its own 16 A is not asked again every cycle.
        self._asked: tuple[int, int] | None = None

    async def run(self) -> None:
        """Until cancelled; the owner closes the driver after (see make_safe)."""
        while True:
            self.turned = time.monotonic()
            try:
                if not self.connected:
                    await self._connect()
                await self._cycle()
                self.failures = 0
                self.cycles += 1
                await self._wait()
            except DriverError as exc:
                await self._failed(exc)

    def healthy(self) -> bool:
        """For the systemd watchdog: the loop still goes round (slowest: the longest
        pause after failures, plus the tries of a reconnection)."""
        patience = self.settings.retry_max_interval + 60
        return time.monotonic() - self.turned < patience

    async def _connect(self) -> None:
        identity = await self.driver.connect()
        self.connected, self._asked = True, None
        log.info("wallbox connected: %s %s firmware %s, max %s A", identity.vendor, identity.model,
                 identity.firmware_version, identity.max_current)
        self.controller.wallbox_connected(identity)

    async def _cycle(self) -> None:
        controller = self.controller
        state = await self.driver.read_state()
        controller.observe(state)
        if controller.restart_wallbox:
            controller.restart_wallbox = False
            log.warning("restarting the wallbox (hard reset)")
            await self.driver.restart()
            await self.driver.close()
            self.connected = False  # it reboots: introduce it again
            return
        wanted = controller.command()
        changed = False
        if wanted.amps is not None and self._asked != (wanted.amps, state.offered_current):
            applied = await self.driver.set_current(wanted.amps)
            self._asked = (wanted.amps, applied)
            changed = applied != state.offered_current
            if changed:
                log.info("wallbox current %d A (%s)", applied, wanted.reason)
        if state.mode != wanted.mode:
            await self.driver.set_mode(wanted.mode)
            log.info("wallbox %s (%s)", wanted.mode, wanted.reason)
            changed = True
        if changed:  # report what the wallbox does now, not what it did before
            controller.observe(await self.driver.read_state())

    async def _failed(self, exc: DriverError) -> None:
        self.failures += 1
        log.warning("wallbox: %s (failure %d)", exc, self.failures)
        self.controller.wallbox_unreachable(str(exc), self.failures)
        await self.driver.close()
        self.connected = False
        pause = min(self.settings.retry_max_interval, self.settings.poll_interval * 2 ** (self.failures - 1))
        await asyncio.sleep(pause)

    async def _wait(self) -> None:
        """Until the next poll, a notification from the wallbox, or the controller's attention."""
        attention = self.controller.attention
        if attention.is_set():
            attention.clear()
            return
        notified = asyncio.ensure_future(self.driver.wait_notification(self.settings.poll_interval))
        poked = asyncio.ensure_future(attention.wait())
        try:
            await asyncio.wait({notified, poked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (notified, poked):
                waiter.cancel()
        attention.clear()
        if notified.done() and not notified.cancelled():
            notified.result()  # a lost port shows here while idle

    async def make_safe(self) -> None:
        """Before the bridge stops: nobody will follow the site's load, so fall back to the default current."""
        if not self.connected or self.controller.transaction is None:
            return
        amps = int(min(self.settings.default_current, self.controller.max_current))
        reading = self.controller.reading
        if reading is not None and reading.offered_current is not None and reading.offered_current < amps:
            return
        await self.driver.set_current(amps)
        log.info("wallbox current %d A: the bridge stops, nobody follows the site's load", amps)

