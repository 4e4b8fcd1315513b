"""A bare OCPP central system on the ocpp library that acknowledges every message,
1.6J or 2.0.1, whichever subprotocol the charger offers (1.6 when it offers both).

Two uses: the benchmark's baseline (what the library and websockets cost
without any of the edge's work behind them), and the counterpart the
simulator's own tests run against, which is why it can record what it
received, send requests to a charge point, and leave chosen actions
unanswered (a central system that dies before it answers).

    python -m simulator.bare_central_system --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import itertools
import json
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import unquote

import ocpp.messages
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action
from ocpp.v201 import ChargePoint as ChargePoint201, call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol


@dataclass(frozen=True)
class Received:
    charge_point_id: str
    action: str
    payload: dict  # camelCase, as it came over the wire


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Recording:
    """The central system's side of one charge point's WebSocket, either version: what it received
    recorded when asked to, chosen actions left unanswered."""

    central: BareCentralSystem
    id: str
    _connection: ServerConnection
    route_message: Callable[[str], Any]

    def __init__(self, central: BareCentralSystem, charge_point_id: str, connection: ServerConnection) -> None:
        super().__init__(charge_point_id, connection)  # type: ignore[call-arg]
        self.central = central

    async def start(self) -> None:
        while True:
            raw = await self._connection.recv()
            if self.central.keep or self.central.unanswered:  # the baseline skips the extra parse
                message = json.loads(raw)
                if isinstance(message, list) and len(message) == 4 and message[0] == 2:
                    await self.central.record(Received(self.id, message[2], message[3]))
                    if message[2] in self.central.unanswered:
                        continue
            await self.route_message(raw)


class _Connection(_Recording, ChargePoint):
    """OCPP 1.6J."""

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=_now(), interval=self.central.heartbeat_interval,
                                            status=self.central.boot_status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.authorize)
    def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    def on_start_transaction(self, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(transaction_id=next(self.central.transaction_ids),
                                            id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    def on_stop_transaction(self, id_tag: str | None = None, **_: Any) -> call_result.StopTransaction:
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"} if id_tag else None)

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on(Action.status_notification)
    def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.data_transfer)
    def on_data_transfer(self, **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="Accepted")

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, **_: Any) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()


class _Connection201(_Recording, ChargePoint201):
    """OCPP 2.0.1: what a charging station sends in a charging session, and its reports."""

    @on(Action201.boot_notification)
    def on_boot(self, **_: Any) -> result201.BootNotification:
        return result201.BootNotification(current_time=_now(), interval=self.central.heartbeat_interval,
                                          status=self.central.boot_status)

    @on(Action201.heartbeat)
    def on_heartbeat(self, **_: Any) -> result201.Heartbeat:
        return result201.Heartbeat(current_time=_now())

    @on(Action201.status_notification)
    def on_status_notification(self, **_: Any) -> result201.StatusNotification:
        return result201.StatusNotification()

    @on(Action201.authorize)
    def on_authorize(self, **_: Any) -> result201.Authorize:
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on(Action201.transaction_event)
    def on_transaction_event(self, id_token: dict | None = None, **_: Any) -> result201.TransactionEvent:
        return result201.TransactionEvent(id_token_info={"status": "Accepted"} if id_token else None)

    @on(Action201.meter_values)
    def on_meter_values(self, **_: Any) -> result201.MeterValues:
        return result201.MeterValues()

    @on(Action201.security_event_notification)
    def on_security_event(self, **_: Any) -> result201.SecurityEventNotification:
        return result201.SecurityEventNotification()

    @on(Action201.notify_report)
    def on_notify_report(self, **_: Any) -> result201.NotifyReport:
        return result201.NotifyReport()

    @on(Action201.notify_event)
    def on_notify_event(self, **_: Any) -> result201.NotifyEvent:
        return result201.NotifyEvent()

    @on(Action201.data_transfer)
    def on_data_transfer(self, **_: Any) -> result201.DataTransfer:
        return result201.DataTransfer(status="Accepted")

    @on(Action201.firmware_status_notification)
    def on_firmware_status(self, **_: Any) -> result201.FirmwareStatusNotification:
        return result201.FirmwareStatusNotification()

    @on(Action201.log_status_notification)
    def on_log_status(self, **_: Any) -> result201.LogStatusNotification:
        return result201.LogStatusNotification()


CONNECTIONS: dict[str, type[_Recording]] = {"ocpp1.6": _Connection, "ocpp2.0.1": _Connection201}


class BareCentralSystem:
    def __init__(self, *, heartbeat_interval: int = 300, boot_status: str = "Accepted",
                 passwords: dict[str, str] | None = None, record: bool = True) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.boot_status = boot_status
        self.passwords = passwords  # None: anyone may connect
        self.keep = record
        self.received: list[Received] = []
        self.unanswered: set[str] = set()  # actions recorded but never answered
        self.connections: dict[str, _Recording] = {}
        self.transaction_ids = itertools.count(1)
        self._changed = asyncio.Condition()

    async def record(self, message: Received) -> None:
        if self.keep:
            self.received.append(message)
            async with self._changed:
                self._changed.notify_all()

    def messages(self, action: str | None = None, charge_point_id: str | None = None) -> list[Received]:
        return [m for m in self.received if action in (None, m.action) and charge_point_id in (None, m.charge_point_id)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> None:
        """Until `predicate()` is true after a message arrived or a charge point (dis)connected."""
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)
        await asyncio.wait_for(until(), timeout)

    async def call(self, charge_point_id: str, payload: Any) -> Any:
        """Send a request to a connected charge point; raises its CallError."""
        return await self.connections[charge_point_id].call(payload, suppress=False)  # type: ignore[attr-defined]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.passwords is None:
            return None
        charge_point_id = _charge_point_id(request.path)
        expected = f"{charge_point_id}:{self.passwords.get(charge_point_id)}"
        try:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            given = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            given = ""
        if scheme != "Basic" or charge_point_id not in self.passwords or given != expected:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "unknown charge point or wrong password\n")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        charge_point_id = _charge_point_id(connection.request.path if connection.request else "/")
        session = CONNECTIONS.get(connection.subprotocol or "", _Connection)(self, charge_point_id, connection)
        self.connections[charge_point_id] = session
        await self._notify()
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(charge_point_id) is session:
                del self.connections[charge_point_id]
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _charge_point_id(path: str) -> str:
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


async def serve_bare(host: str = "127.0.0.1", port: int = 9000, *,
                     central_system: BareCentralSystem | None = None) -> Server:
    """Serve `central_system` (a fresh, non-recording one by default) on ws://host:port/<any path>/<id>,
    subprotocol ocpp1.6 or ocpp2.0.1."""
    central = central_system or BareCentralSystem(record=False)
    return await serve(central.handle, host, port, subprotocols=[Subprotocol(p) for p in CONNECTIONS],
                       process_request=central.process_request)


async def _serve_until_terminated(host: str, port: int, heartbeat_interval: int) -> None:
    server = await serve_bare(host, port, central_system=BareCentralSystem(
        heartbeat_interval=heartbeat_interval, record=False))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.close)
    print(f"bare central system on ws://{host}:{port}/ocpp/<charge point id>", flush=True)
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A bare OCPP 1.6J and 2.0.1 central system that acknowledges "
                                                 "everything.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    args = parser.parse_args(argv)
    # As the edge does: validate payloads inline. The library's default hops
    # to a worker thread per message, which would make the baseline slower
    # than the library can be, and the benchmark's ratio flattering.
    ocpp.messages.ASYNC_VALIDATION = False
    asyncio.run(_serve_until_terminated(args.host, args.port, args.heartbeat_interval))


if __name__ == "__main__":
    main()
