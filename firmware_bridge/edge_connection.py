"""The bridge's connection to the edge: connect, boot, deliver the queue, report, reconnect.

One `EdgeLink` per WebSocket connection, served under a task group of its
own: when the socket closes, everything waiting on it (a call without an
answer, the heartbeat, a Reset's follow-up) ends with it, and nothing of a
dead connection leaks into the next.

One sender per connection delivers the queued transaction messages first
and only then the status changes, so the edge hears a StopTransaction
before the Finishing or Available that follows it, also after an outage.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from edge.clock import iso
from firmware_bridge.config import BridgeConfig
from firmware_bridge.controller import Controller
from firmware_bridge.decisions import ConnectorStatus
from firmware_bridge.drivers.base import Identity
from firmware_bridge.handlers import EdgeLink
from firmware_bridge.store import Queued

log = logging.getLogger(__name__)

# Before its first BootNotification the bridge waits this long to know the
# wallbox (vendor, firmware), unless the wallbox is already known unreachable.
IDENTITY_WAIT = 10.0


class EdgeConnection:
    def __init__(self, config: BridgeConfig, controller: Controller) -> None:
        self.config, self.controller = config, controller
        self.url = config.edge.url.rstrip("/") + "/" + config.charge_point.id
        # Set before the bridge cancels run(): on Python 3.11 a task group whose
        # children fail as it is cancelled can drop that cancellation.
        self.stopping = False

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                async with connect(self.url, subprotocols=[Subprotocol("ocpp1.6")],
                                   additional_headers=self._headers(), proxy=None, open_timeout=10,
                                   close_timeout=2) as websocket:
                    # Only a connection that got online resets the pause: an edge that
                    # takes the socket and then refuses the boot is not hammered either.
                    failures = 0 if await self._serve(websocket) else failures + 1
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("cannot reach the edge at %s: %s", self.url, exc)
            pause = min(self.config.edge.reconnect_max_interval, 0.5 * 2 ** max(failures - 1, 0))
            await asyncio.sleep(pause)

    def _headers(self) -> dict[str, str]:
        password = self.config.edge.password
        if password is None:
            return {}
        token = base64.b64encode(f"{self.config.charge_point.id}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    async def _serve(self, websocket: Any) -> bool:
        """Serve one connection until it breaks; True when it got online."""
        link = EdgeLink(self.config.charge_point.id, websocket, self.controller,
                        response_timeout=self.config.edge.response_timeout, boot=self._boot, report=self._report)
        online = False
        try:
            async with asyncio.TaskGroup() as tasks:
                link.tasks = tasks
                tasks.create_task(link.start())
                await self._open(link)
                online = True
                tasks.create_task(self._heartbeat(link))
        # A closed socket, an unanswered call or a refused message all end the
        # connection; anything else is a bug and ends the bridge (systemd restarts it).
        except* (ConnectionClosed, TimeoutError, OCPPError) as lost:
            log.warning("connection to the edge lost: %s",
                        "; ".join(str(e) or type(e).__name__ for e in lost.exceptions))
        finally:
            self.controller.set_online(False)
        return online

    async def _open(self, link: EdgeLink) -> None:
        """Boot if due, deliver the queue, report the statuses; the sender keeps running after."""
        controller = self.controller
        if controller.boot_pending:
            try:
                await controller.wait_for(
                    lambda: controller.identity is not None or controller.link_problem is not None, IDENTITY_WAIT)
            except TimeoutError:
                pass
            while controller.boot_pending:
                result = await self._boot(link)
                if controller.boot_pending:  # Pending or Rejected: ask again when told
                    await asyncio.sleep(result.interval if result.interval > 0 else 10)
        online = asyncio.get_running_loop().create_future()
        assert link.tasks is not None
        link.tasks.create_task(self._send(link, online))
        await online
        controller.set_online(True)

    async def _boot(self, link: EdgeLink) -> Any:
        controller, cp = self.controller, self.config.charge_point
        identity = controller.identity or Identity(vendor="unknown", model=self.config.wallbox.protocol)
        result = await link.send(call.BootNotification(
            charge_point_vendor=(cp.vendor or identity.vendor)[:20],
            charge_point_model=(cp.model or identity.model)[:20],
            charge_point_serial_number=identity.serial_number[:25] if identity.serial_number else None,
            firmware_version=identity.firmware_version[:50] if identity.firmware_version else None))
        log.info("BootNotification: %s (interval %s s)", result.status, result.interval)
        if result.status == "Accepted":
            controller.boot_pending = False
            if result.interval > 0:
                controller.keys.set("HeartbeatInterval", str(result.interval))
        return result

    async def _send(self, link: EdgeLink, online: asyncio.Future) -> None:
        """Queued transaction messages first, then status changes; for as long as the connection lasts."""
        controller = self.controller
        reported: dict[int, ConnectorStatus] = {}
        wake = controller.changed.subscribe()
        try:
            while True:
                wake.clear()
                while (queued := controller.store.head()) is not None:
                    await self._deliver(link, queued)
                await self._report(link, reported)
                if not online.done():
                    online.set_result(None)
                await wake.wait()
        finally:
            controller.changed.unsubscribe(wake)

    async def _deliver(self, link: EdgeLink, queued: Queued) -> None:
        store, payload = self.controller.store, dict(queued.payload)
        if queued.action != "StartTransaction":
            transaction_id = store.transaction_id(queued.local_tx) if queued.local_tx is not None else None
            if transaction_id is None:
                log.warning("dropping %s: its StartTransaction never got a transaction id", queued.action)
                store.remove(queued.id)
                return
            payload["transaction_id"] = transaction_id
        try:
            result = await link.send(getattr(call, queued.action)(**payload))
        except OCPPError as exc:
            # The edge understood and refused it: sending it again would not help.
            log.error("the edge refused %s: %r; dropped", queued.action, exc)
            result = None
        if queued.action == "StartTransaction" and queued.local_tx is not None:
            if result is None:
                self.controller.started(queued.local_tx, None, "Invalid")
            else:
                self.controller.started(queued.local_tx, result.transaction_id, result.id_tag_info["status"])
        store.remove(queued.id)
        self.controller.changed.fire()  # for whoever waits for the queue to drain (a Reset)

    async def _report(self, link: EdgeLink, reported: dict[int, ConnectorStatus] | None = None) -> None:
        """StatusNotification for each connector whose status changed since `reported` (None: all)."""
        controller = self.controller
        for connector_id, status in ((0, controller.charge_point_status()), (1, controller.status())):
            if reported is not None and reported.get(connector_id) == status:
                continue
            await link.send(call.StatusNotification(
                connector_id=connector_id, error_code=status.error_code, status=status.status,
                info=status.info, vendor_error_code=status.vendor_error_code,
                timestamp=iso(controller.clock.now())))
            log.info("status connector %d: %s %s", connector_id, status.status, status.error_code)
            if reported is not None:
                reported[connector_id] = status

    async def _heartbeat(self, link: EdgeLink) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.controller.keys.number("HeartbeatInterval")))
            await link.send(call.Heartbeat())
