"""One WebSocket connection of the 2.0.1 station: boot as B01-B03 say, deliver the queues, heartbeat.

- Accepted: queued TransactionEvents (seqNo order) and security events go
  first, then every connector's StatusNotification, then heartbeats.
- Pending: the station answers the CSMS (and sends what the CSMS asked for:
  NotifyReport, a triggered message) but nothing of its own but
  BootNotification, retried after the interval.
- Rejected: it answers nothing and sends the next BootNotification after the interval.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, unpack
from ocpp.v201 import call
from websockets.asyncio.client import ClientConnection

from simulator.outbox import Outbox
from simulator.session import Closable, NotConnected, boot_until_accepted, run_session
from simulator.v201.handlers import Station, StationHandlers
from simulator.v201.services import ServedStation, ServiceHandlers


class Connected(Station, ServedStation, Protocol):
    """What one connection asks of the 2.0.1 station (station.py, which imports this module to serve), besides
    what its handlers ask."""

    response_timeout: float
    connected: bool
    security_events: Outbox

    def is_accepted(self) -> bool: ...

    async def set_link(self, link: Any) -> None: ...

    async def notify(self) -> None: ...

    async def pause(self, seconds: float) -> bool: ...


class Link(Closable, StationHandlers, ServiceHandlers):
    def __init__(self, sim: Connected, connection: ClientConnection) -> None:
        super().__init__(sim.id, connection, response_timeout=sim.response_timeout)
        self.sim = sim

    async def route_message(self, raw_msg: str) -> None:
        # B03.FR.*: while Rejected the station does not answer the CSMS's requests.
        if self.sim.registration == "Rejected":
            try:
                if unpack(raw_msg).message_type_id == MessageType.Call:
                    self.sim.emit("ignored", reason="rejected", message=raw_msg[:200])
                    return
            except OCPPError:
                pass
        await super().route_message(raw_msg)


async def serve(sim: Connected, connection: ClientConnection) -> bool:
    sim.connected = True  # TransactionEvents made now are not offline, even before the boot is Accepted
    try:
        return await run_session(sim, Link(sim, connection), _serve)
    finally:
        sim.connected = False


async def _serve(sim: Connected, link: Link, group: asyncio.TaskGroup) -> None:
    booted = not sim.is_accepted()  # the first connection, or the one after a reboot
    await boot_until_accepted(sim, link)
    drained = asyncio.Event()
    group.create_task(_deliver(sim, sim.outbox, link, drained))
    await drained.wait()
    group.create_task(_deliver(sim, sim.security_events, link, asyncio.Event()))
    await sim.sync_status(force=sim.evses if booted else (), via=link)
    await sim.set_link(link)
    group.create_task(_heartbeat(sim, link))


async def _heartbeat(sim: Connected, link: Link) -> None:
    while True:
        if await sim.pause(sim.device.number("OCPPCommCtrlr", "HeartbeatInterval")):  # 0: off
            result = await link.send(call.Heartbeat())
            sim.emit("heartbeat", current_time=result.current_time)


async def _deliver(sim: Connected, outbox: Outbox, link: Link, drained: asyncio.Event) -> None:
    """Send `outbox` in order; an unanswered message is retried MessageAttempts times (E13), then dropped."""
    attempts = 0
    while True:
        if not len(outbox):
            drained.set()
        entry = await outbox.head()
        try:
            result = await link.send(entry.build())
            if entry.on_result is not None:
                entry.on_result(result)
        except OCPPError as exc:  # the CSMS understood and refused: sending it again would not help
            sim.emit("call_error", action=entry.action, error=repr(exc))
        except TimeoutError:
            attempts += 1
            if attempts < sim.device.number("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent"):
                await asyncio.sleep(sim.device.number("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent"))
                continue
            sim.emit("dropped", action=entry.action, reason=f"no answer after {attempts} attempts")
        attempts = 0
        outbox.pop(entry)
        await sim.notify()


__all__ = ["Link", "NotConnected", "serve"]
