"""The connection to the central system: connect, boot, report, and reconnect when it breaks.

One `Link` per WebSocket connection: the ocpp library's ChargePoint keeps a
call lock and a response queue per instance, and a fresh instance per
connection means nothing of a dead connection (a call waiting for an answer
that will never come) leaks into the next one.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Awaitable, Callable, Protocol

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from simulator.handlers import RequestHandlers, Wallbox

MAX_BACKOFF = 30.0


class NotConnected(ConnectionError):
    """There is no connection to the central system (any more)."""


class Closable:
    """For an ocpp ChargePoint (either version): calls that give up as soon as the connection is gone."""

    _connection: Any
    call: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = asyncio.Event()

    async def send(self, payload: Any) -> Any:
        """ocpp's call(), but giving up with NotConnected as soon as the connection is gone.

        Without this a call would wait the whole response timeout for an
        answer that cannot arrive over a closed socket.
        """
        answer = asyncio.ensure_future(self.call(payload, suppress=False))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({answer, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not answer.done():
                answer.cancel()
        if answer.done() and not answer.cancelled():
            error = answer.exception()
            if error is None:
                return answer.result()
            if isinstance(error, ConnectionClosed):
                raise NotConnected(str(error)) from error
            raise error
        raise NotConnected("the connection closed while waiting for an answer")

    def mark_closed(self) -> None:
        self._closed.set()

    async def close(self) -> None:
        await self._connection.close()


class Connected(Wallbox, Protocol):
    """What one 1.6 connection asks of the charge point (charge_point.py, which imports this module), besides
    what its handlers ask."""

    response_timeout: float

    def is_accepted(self) -> bool: ...

    async def set_link(self, link: Any) -> None: ...

    async def notify(self) -> None: ...


class Link(Closable, RequestHandlers):
    def __init__(self, sim: Connected, connection: ClientConnection) -> None:
        super().__init__(sim.id, connection, response_timeout=sim.response_timeout)
        self.sim = sim


def auth_headers(sim: Any) -> dict[str, str]:
    if sim.password is None:
        return {}
    token = base64.b64encode(f"{sim.id}:{sim.password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def tls_options(sim: Any) -> dict[str, Any]:
    """wss:// (security profiles 2 and 3): the charger's TLS context (the site CA, its client certificate)."""
    return {"ssl": sim.tls} if sim.url.startswith("wss://") and sim.tls is not None else {}


async def connect_forever(sim: Any, subprotocol: str = "ocpp1.6",
                          session: Callable[[Any, ClientConnection], Awaitable[bool]] | None = None) -> None:
    """Connect, serve with `session` (True once it got online), reconnect with backoff; either OCPP version."""
    serve_connection = session or _session
    failures = 0
    while True:
        try:
            async with connect(sim.url, subprotocols=[Subprotocol(subprotocol)], additional_headers=auth_headers(sim),
                               proxy=None, open_timeout=10, close_timeout=2, **tls_options(sim)) as connection:
                # Only a connection that got online resets the backoff: a central system
                # that accepts the socket and then fails the boot is not hammered either.
                failures = 0 if await serve_connection(sim, connection) else failures + 1
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            failures += 1
            sim.emit("connect_failed", error=str(exc) or type(exc).__name__)
        # The first retry comes quickly (a reset or a blip); a central system that
        # stays away gets doubling pauses, so a fleet does not hammer it.
        await asyncio.sleep(min(sim.reconnect_delay * 2 ** max(failures - 1, 0), MAX_BACKOFF))


async def _session(sim: Connected, connection: ClientConnection) -> bool:
    return await run_session(sim, Link(sim, connection), _serve)


async def run_session(sim: Any, link: Any, serve: Callable[[Any, Any, asyncio.TaskGroup], Awaitable[None]]) -> bool:
    """Serve one connection with `link` until it breaks; True when it got online (either OCPP version)."""
    sim.emit("connected", url=sim.url)
    reason, online = "closed", False
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(link.start())
            group.create_task(serve(sim, link, group))
    # A closed socket, an unanswered call or a refused boot or heartbeat all end
    # the connection; anything else is a bug in the simulator and propagates.
    except* (ConnectionClosed, NotConnected, TimeoutError, OCPPError) as lost:
        reason = "; ".join(str(e) or type(e).__name__ for e in lost.exceptions)
    finally:
        online = sim.link is link
        link.mark_closed()
        await sim.set_link(None)
    sim.emit("disconnected", reason=reason)
    return online


async def boot_until_accepted(sim: Any, link: Any) -> None:
    """BootNotification until Accepted, each retry after the interval the central system gave (either version)."""
    while not sim.is_accepted():
        result = await sim.boot(link.send)
        if result.status != "Accepted":
            try:  # a TriggerMessage(BootNotification) may get accepted before the retry is due
                await sim.wait_accepted(result.interval if result.interval > 0 else sim.reconnect_delay)
            except TimeoutError:
                pass


async def _serve(sim: Connected, link: Link, group: asyncio.TaskGroup) -> None:
    booted = not sim.is_accepted()  # the first connection, or the one after a Reset
    await boot_until_accepted(sim, link)
    # Queued transaction messages first: they happened before any status change
    # made while offline (a StopTransaction before its Finishing).
    drained = asyncio.Event()
    group.create_task(_deliver(sim, link, drained))
    await drained.wait()
    await sim.sync_status(force=sim.connectors if booted else (), via=link)
    await sim.set_link(link)
    group.create_task(_heartbeat(sim, link))


async def _heartbeat(sim: Connected, link: Link) -> None:
    while True:
        if await sim.pause(sim.config.number("HeartbeatInterval")):  # 0 switches heartbeats off
            result = await link.send(call.Heartbeat())
            sim.emit("heartbeat", current_time=result.current_time)


async def _deliver(sim: Connected, link: Link, drained: asyncio.Event) -> None:
    while True:
        if not len(sim.outbox):
            drained.set()
        entry = await sim.outbox.head()
        payload = entry.build()
        if payload is None:
            sim.emit("dropped", action=entry.action, local_id=entry.transaction.local_id,
                     reason="the central system never accepted its StartTransaction")
        else:
            try:
                result = await link.send(payload)
            except OCPPError as exc:
                # The central system understood and refused: sending it again would not help.
                sim.emit("call_error", action=type(payload).__name__, error=repr(exc))
            except TimeoutError:
                await asyncio.sleep(sim.config.number("TransactionMessageRetryInterval"))
                continue
            else:
                if entry.on_result is not None:
                    entry.on_result(result)
        sim.outbox.pop(entry)
        await sim.notify()
