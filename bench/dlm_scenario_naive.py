"""A naive equal-share controller: the yardstick the edge has to beat on every scenario.

A small OCPP 1.6J central system that accepts every charger and id tag, reads
the grid meter over Modbus TCP once a second, and gives every running car the
same limit: (fuse - margin - the load that is not a car) divided by the cars
on the fullest phase, where the load that is not a car is the meter minus
what the cars' latest MeterValues say. Nothing smarter: no default profile,
no pacing, no learned phases (a car on a 3-phase charger counts on all
three), no failsafe (while the meter is silent it keeps the limits it sent).
When the share falls below the 6 A minimum, the latest arrivals get 0 A until
the others can have 6 A each. Limits go out in 0.5 A steps, whenever the step
changes, up or down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edge.dlm.phases import phase_map, to_site

MIN_CURRENT = 6.0
STEP_A = 0.5
PERIOD_S = 1.0                 # the meter poll, as the edge's default
CURRENT_REGISTERS = 0x06       # SDM630: L1, L2, L3 current, IEEE 754 floats, high word first
PROFILE_ID = 100

log = logging.getLogger("bench.naive")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Connector:
    """What the naive controller knows of one charger's connector 1."""

    transaction_id: int | None = None
    started: float = 0.0                  # order of arrival
    measured: tuple[float, float, float] = (0.0, 0.0, 0.0)   # charger phases L1..L3, from MeterValues
    sent: float | None = None             # the last limit sent for this transaction


def _currents(meter_value: list[dict]) -> tuple[float, float, float] | None:
    found: dict[int, float] = {}
    for value in meter_value:
        for sample in value.get("sampled_value", []):
            if sample.get("measurand") == "Current.Import" and str(sample.get("phase", "")).startswith("L"):
                found[int(str(sample["phase"])[1]) - 1] = float(sample["value"])
    if not found:
        return None
    return (found.get(0, 0.0), found.get(1, 0.0), found.get(2, 0.0))


class _Session(ChargePoint):
    def __init__(self, central: NaiveController, cid: str, connection: ServerConnection) -> None:
        super().__init__(cid, connection)
        self.central = central

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.authorize)
    def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    def on_start(self, **_: Any) -> call_result.StartTransaction:
        tx = next(self.central.transaction_ids)
        self.central.connectors[self.id] = Connector(tx, started=asyncio.get_running_loop().time())
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    def on_stop(self, transaction_id: int, **_: Any) -> call_result.StopTransaction:
        known = self.central.connectors.get(self.id)
        if known is not None and known.transaction_id == transaction_id:
            del self.central.connectors[self.id]
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, meter_value: list[dict], transaction_id: int | None = None,
                        **_: Any) -> call_result.MeterValues:
        known = self.central.connectors.get(self.id)
        currents = _currents(meter_value)
        if known is not None and currents is not None and transaction_id in (None, known.transaction_id):
            known.measured = currents
        return call_result.MeterValues()

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()


@dataclass
class NaiveController:
    limit: float
    margin: float
    chargers: dict[str, tuple[str, float]]       # id -> (rotation, max current)
    meter_port: int
    connectors: dict[str, Connector] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    transaction_ids: Any = field(default_factory=lambda: itertools.count(1))
    bound_port: int = 0
    _server: Server | None = None
    _loop: asyncio.Task | None = None
    _sends: set = field(default_factory=set)

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")])
        self.bound_port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.create_task(self._control())
        return f"ws://127.0.0.1:{self.bound_port}/ocpp"

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for task in list(self._sends):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else "/"
        cid = path.rstrip("/").rsplit("/", 1)[-1]
        session = _Session(self, cid, connection)
        self.sessions[cid] = session
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self.sessions.get(cid) is session:
                del self.sessions[cid]

    async def _read_meter(self, client: AsyncModbusTcpClient) -> tuple[float, float, float] | None:
        try:
            if not client.connected:
                await client.connect()
            response = await client.read_input_registers(CURRENT_REGISTERS, count=6, device_id=1)
        except (ModbusException, OSError, asyncio.TimeoutError):
            return None
        if response.isError():
            return None
        r = response.registers
        values = [struct.unpack(">f", struct.pack(">HH", r[i], r[i + 1]))[0] for i in (0, 2, 4)]
        return (values[0], values[1], values[2])

    async def _control(self) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=self.meter_port, timeout=0.5, retries=0, reconnect_delay=0)
        try:
            while True:
                started = asyncio.get_running_loop().time()
                reading = await self._read_meter(client)
                if reading is not None:
                    self._decide(reading)
                await asyncio.sleep(max(0.0, PERIOD_S - (asyncio.get_running_loop().time() - started)))
        finally:
            client.close()

    def shares(self, reading: tuple[float, float, float]) -> dict[str, float]:
        """The limit per running car: an equal share of what the meter says is not a car."""
        running = sorted(self.connectors.items(), key=lambda item: item[1].started)
        cars = [0.0, 0.0, 0.0]
        for cid, c in running:
            for p, amps in enumerate(to_site(c.measured, phase_map(3, self.chargers[cid][0]))):
                cars[p] += amps
        room = [self.limit - self.margin - (reading[p] - cars[p]) for p in range(3)]
        out = {cid: 0.0 for cid, _ in running}
        for k in range(len(running), 0, -1):
            # Every car counts on all three phases: equal shares of the fullest one.
            share = min(room) / k
            if share >= MIN_CURRENT:
                for cid, _ in running[:k]:
                    out[cid] = min(self.chargers[cid][1], share // STEP_A * STEP_A)
                break
        return out

    def _decide(self, reading: tuple[float, float, float]) -> None:
        for cid, limit in self.shares(reading).items():
            c = self.connectors[cid]
            session = self.sessions.get(cid)
            if session is None or c.sent == limit:
                continue
            c.sent = limit
            task = asyncio.create_task(self._send(session, c, limit))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, session: _Session, c: Connector, limit: float) -> None:
        profile = {"chargingProfileId": PROFILE_ID + 1, "transactionId": c.transaction_id, "stackLevel": 1,
                   "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                   "chargingSchedule": {"chargingRateUnit": "A",
                                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}
        try:
            await session.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile), suppress=False)
        except (ConnectionClosed, asyncio.TimeoutError):
            c.sent = None       # not delivered: sent again at the next reading
