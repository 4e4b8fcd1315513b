"""A light OCPP 2.0.1 charging station: the messages of a charging session and nothing else.

For load tests and benchmarks (hundreds of stations in one process), where the
full simulated station (simulator.v201.station: device model, electrics, cars,
queues, a sampling loop and a tick loop per station) would make the load
generator, not the central system, the limit. One EVSE with one connector; the
caller decides what is sent and when:

- on each connection: BootNotification until Accepted, then StatusNotification
  of the connector (Available, or Occupied with a cable in);
- `plug_in`: StatusNotification Occupied;
- `start_transaction`: Authorize (a CSMS that does not take it answers a
  CALLERROR; the station carries on, as one configured to start on the
  TransactionEvent's answer does), then TransactionEvent Started with the
  idToken and the energy register;
- `meter_values()`: a TransactionEvent Updated (MeterValuePeriodic) with ten
  sampled values, for the caller to `send`; the register grows as 11 kW would;
- `stop_transaction`: TransactionEvent Ended;
- Heartbeats only when the caller sends them (`send(call.Heartbeat())`).

CSMS requests are answered as a compliant station with no opinions would
(Accepted, the variables it is asked to read Unknown), so a CSMS's set-up work
after a boot ends. Connecting, backoff and the events (`connected`,
`connect_failed`, `disconnected`, `request`, `transaction_id`) are the
simulator's (simulator.session), so a fleet of these reads like a fleet of
the full simulators.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection

from simulator.session import Closable, NotConnected, boot_until_accepted, connect_forever, run_session

SUBPROTOCOL = "ocpp2.0.1"
EVSE = 1
CONNECTOR = 1
# What the station draws while charging: 16 A on three phases at 230 V.
CURRENT_A, VOLTAGE_V, PHASES = 16.0, 230.0, 3


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LightStation:
    """`url` is the CSMS's base URL (the station id is appended); `password` for HTTP Basic
    (security profile 1, or 2 with `tls`)."""

    def __init__(self, station_id: str, url: str, *, password: str | None = None,
                 tls: ssl.SSLContext | None = None, on_event: Callable[[str, dict], None] | None = None,
                 reconnect_delay: float = 1.0, response_timeout: float = 30.0) -> None:
        self.id = station_id
        self.url = url.rstrip("/") + "/" + quote(station_id, safe="")
        self.password, self.tls = password, tls
        self.on_event = on_event
        self.reconnect_delay, self.response_timeout = reconnect_delay, response_timeout
        self.link: _Link | None = None            # set once booted and the status reported
        self.registration: str | None = None
        self.boot_reason = "PowerUp"
        self.occupied = False
        self.transaction_id: str | None = None
        self.seq_no = 0                           # never reset, as 2.0.1 asks
        self.energy_wh = 0.0
        self._energy_at: datetime | None = None   # when energy_wh was last advanced while charging
        self.local_list_version = 0
        self._accepted = asyncio.Event()
        self._changed = asyncio.Condition()

    # -- what simulator.session expects of a station ----------------------------------------

    def emit(self, name: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, data)

    def is_accepted(self) -> bool:
        return self._accepted.is_set()

    async def wait_accepted(self, timeout: float | None = 10) -> None:
        await asyncio.wait_for(self._accepted.wait(), timeout)

    async def wait_online(self, timeout: float | None = 10) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.link is not None)
        await asyncio.wait_for(until(), timeout)

    async def set_link(self, link: _Link | None) -> None:
        async with self._changed:
            self.link = link
            self._changed.notify_all()

    async def boot(self, send: Callable[[Any], Any]) -> Any:
        result = await send(call.BootNotification(
            charging_station={"model": "LightStation", "vendor_name": "SimVendor", "serial_number": self.id,
                              "firmware_version": "light-1"},
            reason=self.boot_reason))
        self.registration = result.status
        if result.status == "Accepted":
            self._accepted.set()
        self.emit("boot", status=result.status, interval=result.interval)
        return result

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected (reconnecting with backoff) until cancelled."""
        await connect_forever(self, SUBPROTOCOL, self._session)

    async def _session(self, _: Any, connection: ClientConnection) -> bool:
        return await run_session(self, _Link(self, connection), self._serve)

    async def _serve(self, _: Any, link: _Link, group: asyncio.TaskGroup) -> None:
        await boot_until_accepted(self, link)
        await link.send(self._status())
        await self.set_link(link)

    async def send(self, payload: Any) -> Any:
        """One request; raises NotConnected while offline, the CSMS's CALLERROR as OCPPError."""
        link = self.link
        if link is None:
            raise NotConnected(f"{self.id} is not connected")
        return await link.send(payload)

    # -- what a driver does ---------------------------------------------------------------------

    async def plug_in(self, evse_id: int = EVSE) -> None:
        self.occupied = True
        await self.send(self._status())

    async def start_transaction(self, evse_id: int, id_token: str, *, token_type: str = "ISO14443") -> str:
        """Authorize, then TransactionEvent Started; -> the transactionId (the station makes it).
        The `transaction_id` event carries the status the CSMS gave the token."""
        token = {"id_token": id_token, "type": token_type}
        try:
            authorized = (await self.send(call.Authorize(id_token=token))).id_token_info["status"]
        except OCPPError as exc:    # a CSMS without Authorize: the TransactionEvent's answer decides
            authorized = None
            self.emit("call_error", action="Authorize", error=repr(exc))
        self.transaction_id = str(uuid.uuid4())
        self._energy_at = _now()
        result = await self.send(self._event("Started", "Authorized", id_token=token,
                                             meter_value=[self._register(self._energy_at, "Transaction.Begin")]))
        status = (result.id_token_info or {}).get("status", "Accepted")
        self.emit("transaction_id", transaction_id=self.transaction_id, status=status, authorize=authorized)
        return self.transaction_id

    def meter_values(self) -> call.TransactionEvent:
        """A TransactionEvent Updated with what a three-phase wallbox samples: current and voltage per
        phase, power, the energy register, SoC and the offered current (ten values)."""
        at = self._advance()
        power = CURRENT_A * VOLTAGE_V * PHASES

        def sampled(measurand: str, value: float, unit: str, phase: str | None = None,
                    location: str = "Outlet") -> dict:
            item = {"value": round(value, 1), "context": "Sample.Periodic", "measurand": measurand,
                    "location": location, "unit_of_measure": {"unit": unit}}
            if phase is not None:
                item["phase"] = phase
            return item

        values = [sampled("Current.Import", CURRENT_A, "A", f"L{i}") for i in range(1, PHASES + 1)]
        values += [sampled("Voltage", VOLTAGE_V, "V", f"L{i}-N") for i in range(1, PHASES + 1)]
        values += [sampled("Power.Active.Import", power, "W"),
                   sampled("Energy.Active.Import.Register", self.energy_wh, "Wh"),
                   sampled("SoC", min(100.0, 20.0 + self.energy_wh / 600.0), "Percent", location="EV"),
                   sampled("Current.Offered", 32.0, "A")]
        return self._event("Updated", "MeterValuePeriodic", meter_value=[{"timestamp": _iso(at),
                                                                          "sampled_value": values}])

    async def stop_transaction(self, reason: str = "Local") -> None:
        at = self._advance()
        await self.send(self._event("Ended", "StopAuthorized", meter_value=[self._register(at, "Transaction.End")],
                                    stopped_reason=reason))
        self.transaction_id = None
        self._energy_at = None

    # -- the messages ---------------------------------------------------------------------------

    def _status(self) -> call.StatusNotification:
        return call.StatusNotification(timestamp=_iso(_now()), evse_id=EVSE, connector_id=CONNECTOR,
                                       connector_status="Occupied" if self.occupied else "Available")

    def _advance(self) -> datetime:
        """Now, with the energy register moved on by what the car drew since it was last read."""
        at = _now()
        if self._energy_at is not None:
            self.energy_wh += CURRENT_A * VOLTAGE_V * PHASES * (at - self._energy_at).total_seconds() / 3600.0
            self._energy_at = at
        return at

    def _register(self, at: datetime, context: str) -> dict:
        return {"timestamp": _iso(at), "sampled_value": [{
            "value": round(self.energy_wh, 1), "measurand": "Energy.Active.Import.Register", "context": context,
            "unit_of_measure": {"unit": "Wh"}}]}

    def _event(self, event_type: str, trigger: str, *, id_token: dict | None = None,
               meter_value: list | None = None, stopped_reason: str | None = None) -> call.TransactionEvent:
        if self.transaction_id is None:
            raise RuntimeError(f"{self.id} has no transaction")
        info: dict[str, Any] = {"transaction_id": self.transaction_id,
                                "charging_state": "EVConnected" if event_type == "Ended" else "Charging"}
        if stopped_reason is not None:
            info["stopped_reason"] = stopped_reason
        seq_no, self.seq_no = self.seq_no, self.seq_no + 1
        return call.TransactionEvent(
            event_type=event_type, timestamp=_iso(_now()), trigger_reason=trigger, seq_no=seq_no,
            transaction_info=info, evse={"id": EVSE, "connector_id": CONNECTOR} if event_type == "Started" else None,
            id_token=id_token, meter_value=meter_value)


class _Link(Closable, ChargePoint):
    """One WebSocket connection: the CSMS's requests answered as a station without opinions would."""

    def __init__(self, station: LightStation, connection: ClientConnection) -> None:
        super().__init__(station.id, connection, response_timeout=station.response_timeout)
        self.station = station

    async def _handle_call(self, msg: Any) -> Any:
        self.station.emit("request", action=msg.action)
        return await super()._handle_call(msg)

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list, **_: Any) -> call_result.GetVariables:
        return call_result.GetVariables(get_variable_result=[
            {"attribute_status": "UnknownVariable", "component": item["component"], "variable": item["variable"]}
            for item in get_variable_data])

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list, **_: Any) -> call_result.SetVariables:
        return call_result.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": item["component"], "variable": item["variable"]}
            for item in set_variable_data])

    @on(Action.send_local_list)
    def on_send_local_list(self, version_number: int, **_: Any) -> call_result.SendLocalList:
        self.station.local_list_version = version_number
        return call_result.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(version_number=self.station.local_list_version)

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status="Accepted")

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, **_: Any) -> call_result.SetChargingProfile:
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **_: Any) -> call_result.ClearChargingProfile:
        return call_result.ClearChargingProfile(status="Accepted")

    @on(Action.change_availability)
    def on_change_availability(self, **_: Any) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(self, **_: Any) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(status="Rejected")      # the light station sends only what it is told

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any
                                  ) -> call_result.GetTransactionStatus:
        # It queues nothing: whatever it sent was answered or is gone.
        ongoing = None if transaction_id is None else transaction_id == self.station.transaction_id
        return call_result.GetTransactionStatus(messages_in_queue=False, ongoing_indicator=ongoing)

    @on(Action.get_base_report)
    def on_get_base_report(self, **_: Any) -> call_result.GetBaseReport:
        return call_result.GetBaseReport(status="NotSupported")   # it keeps no device model to report
