"""How the simulated wallbox answers what the central system asks.

Each @on handler decides and answers without awaiting a call (the ocpp
library awaits handlers inline, so a call from one would wait for an answer
the receive loop can no longer read). What has to be sent afterwards is
handed to the matching @after hook, which runs once the answer is on the wire
and starts it as a task the simulator keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from simulator import electrics, profiles, smart_charging
from simulator.connector import Reservation
from simulator.follow_ups import FollowUp, FollowUps
from simulator.metering import iso
from simulator.security import SecurityHandlers, Secured

if TYPE_CHECKING:
    from simulator.connector import Connector, Transaction
    from simulator.local_auth import LocalAuthList
    from simulator.outbox import Entry

TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
               "Heartbeat", "MeterValues", "StatusNotification")


class Wallbox(smart_charging.ProfileHolder, electrics.Sampled, Secured, Protocol):
    """What the handlers ask of the 1.6 charge point (charge_point.py), besides its electrics, profiles and
    security: the charge point imports the connection (session.py) that serves with these handlers, so it
    is named here by shape."""

    vendor: str
    local_auth: LocalAuthList
    firmware_status: str
    diagnostics_status: str

    def spawn(self, coro_fn: FollowUp) -> None: ...

    def reconfigure(self) -> None: ...

    async def authorize(self, id_tag: str) -> str: ...

    async def boot(self, send: Callable[[Any], Any]) -> Any: ...

    def begin_transaction(self, c: Connector, id_tag: str) -> tuple[Transaction, Entry]: ...

    async def stop_if_running(self, tx: Transaction, reason: str) -> None: ...

    async def delivered(self, entry: Entry) -> None: ...

    async def reset(self, kind: str, link: Any = None) -> None: ...

    async def sync_status(self, force: Iterable[int] = (), via: Any = None) -> None: ...


class RequestHandlers(FollowUps, SecurityHandlers):
    sim: Wallbox

    def _refresh(self) -> FollowUp:
        return self.sim.sync_status

    # ---- Core ------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, call_unique_id: str, connector_id: int | None = None,
                        charging_profile: dict | None = None, **_: Any) -> call_result.RemoteStartTransaction:
        sim = self.sim
        candidates = [sim.connectors.get(connector_id)] if connector_id else [
            c for c in sorted(sim.connectors.values(), key=lambda c: (c.car is None, c.connector_id))]
        chosen = next((c for c in candidates if c is not None and c.connector_id != 0 and not c.busy
                       and c.operative and c.fault is None
                       and (c.reservation is None or c.reservation.id_tag == id_tag)), None)
        if charging_profile is not None:
            try:
                usable = profiles.parse_profile(charging_profile, received=sim.wall_clock()).purpose == profiles.TX
            except ValueError:
                usable = False
            chosen = chosen if usable else None
        if chosen is None:
            status = self._answer("RemoteStartTransaction", "Rejected", call_unique_id, id_tag=id_tag)
            return call_result.RemoteStartTransaction(status=status)

        def claim() -> None:  # before the next request is read: a second RemoteStart must pick another connector
            chosen.starting = True

        async def start() -> None:
            try:
                if sim.config.flag("AuthorizeRemoteTxRequests") and await sim.authorize(id_tag) != "Accepted":
                    return
                try:
                    _, entry = sim.begin_transaction(chosen, id_tag)
                except ValueError as exc:  # the driver got there first
                    sim.emit("remote_start_failed", connector_id=chosen.connector_id, reason=str(exc))
                    return
                if charging_profile is not None:
                    smart_charging.set_charging_profile(sim, chosen.connector_id, charging_profile)
            finally:
                chosen.starting = False
            await sim.delivered(entry)
            await sim.sync_status()
        status = self._answer("RemoteStartTransaction", "Accepted", call_unique_id, start, claim, id_tag=id_tag,
                              connector_id=chosen.connector_id)
        return call_result.RemoteStartTransaction(status=status)

    @after(Action.remote_start_transaction)
    def after_remote_start(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, call_unique_id: str, **_: Any) -> call_result.RemoteStopTransaction:
        tx = next((c.transaction for c in self.sim.connectors.values()
                   if c.transaction and c.transaction.id == transaction_id), None)
        if tx is None:
            status = self._answer("RemoteStopTransaction", "Rejected", call_unique_id, transaction_id=transaction_id)
        else:
            status = self._answer("RemoteStopTransaction", "Accepted", call_unique_id,
                                  lambda: self.sim.stop_if_running(tx, "Remote"), transaction_id=transaction_id)
        return call_result.RemoteStopTransaction(status=status)

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.reset)
    def on_reset(self, type: str, call_unique_id: str, **_: Any) -> call_result.Reset:
        status = self._answer("Reset", "Accepted", call_unique_id, lambda: self.sim.reset(type, self), type=type)
        return call_result.Reset(status=status)

    @after(Action.reset)
    def after_reset(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, call_unique_id: str, **_: Any) -> call_result.UnlockConnector:
        c = self.sim.connectors.get(connector_id)
        if c is None or connector_id == 0:
            status = self._answer("UnlockConnector", "NotSupported", call_unique_id, connector_id=connector_id)
        else:
            tx = c.transaction
            follow_up = (lambda: self.sim.stop_if_running(tx, "UnlockCommand")) if tx else None
            status = self._answer("UnlockConnector", "Unlocked", call_unique_id, follow_up, connector_id=connector_id)
        return call_result.UnlockConnector(status=status)

    @after(Action.unlock_connector)
    def after_unlock_connector(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, call_unique_id: str,
                               **_: Any) -> call_result.ChangeAvailability:
        sim = self.sim
        if connector_id not in sim.connectors:
            status = "Rejected"
        else:
            operative = type == "Operative"
            scheduled = False
            for c in sim.connectors.values() if connector_id == 0 else [sim.connectors[connector_id]]:
                if c.busy and not operative:
                    c.scheduled_operative, scheduled = False, True  # applied when the transaction ends
                else:
                    c.operative, c.scheduled_operative = operative, None
            status = "Scheduled" if scheduled else "Accepted"
        self._answer("ChangeAvailability", status, call_unique_id, self._refresh(), connector_id=connector_id,
                     type=type)
        return call_result.ChangeAvailability(status=status)

    @after(Action.change_availability)
    def after_change_availability(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.get_configuration)
    def on_get_configuration(self, call_unique_id: str, key: list[str] | None = None,
                             **_: Any) -> call_result.GetConfiguration:
        known, unknown = self.sim.config.get(key)
        self._answer("GetConfiguration", "Accepted", call_unique_id, keys=key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, call_unique_id: str,
                                **_: Any) -> call_result.ChangeConfiguration:
        status = self._answer("ChangeConfiguration", self.sim.config.change(key, value), call_unique_id,
                              key=key, value=value)
        if status == "Accepted":
            self.sim.reconfigure()
        return call_result.ChangeConfiguration(status=status)

    @on(Action.clear_cache)
    def on_clear_cache(self, call_unique_id: str, **_: Any) -> call_result.ClearCache:
        self.sim.local_auth.clear_cache()
        return call_result.ClearCache(status=self._answer("ClearCache", "Accepted", call_unique_id))

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, call_unique_id: str, message_id: str | None = None,
                         data: str | None = None, **_: Any) -> call_result.DataTransfer:
        status = "Accepted" if vendor_id == self.sim.vendor else "UnknownVendorId"
        self._answer("DataTransfer", status, call_unique_id, vendor_id=vendor_id, message_id=message_id)
        return call_result.DataTransfer(status=status)

    # ---- Remote trigger, firmware management -------------------------------------

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, call_unique_id: str, connector_id: int | None = None,
                           **_: Any) -> call_result.TriggerMessage:
        if requested_message not in TRIGGERABLE:
            status = "NotImplemented"
        elif connector_id is not None and connector_id not in self.sim.connectors:
            status = "Rejected"
        else:
            status = "Accepted"
        follow_up = (lambda: self._triggered(requested_message, connector_id)) if status == "Accepted" else None
        self._answer("TriggerMessage", status, call_unique_id, follow_up, requested_message=requested_message,
                     connector_id=connector_id)
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    def after_trigger_message(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    async def _triggered(self, message: str, connector_id: int | None) -> None:
        sim = self.sim
        # Sent over this link even while a boot is Pending (sim.link is not set yet then).
        if message == "BootNotification":
            await sim.boot(self.send)
        elif message == "Heartbeat":
            await self.send(call.Heartbeat())
        elif message == "StatusNotification":
            await sim.sync_status(force=[connector_id] if connector_id is not None else sim.connectors, via=self)
        elif message == "DiagnosticsStatusNotification":
            await self.send(call.DiagnosticsStatusNotification(status=sim.diagnostics_status))
        elif message == "FirmwareStatusNotification":
            await self.send(call.FirmwareStatusNotification(status=sim.firmware_status))
        elif message == "MeterValues":
            for c in sim.connectors.values():
                if c.connector_id == 0 or connector_id not in (None, c.connector_id):
                    continue
                tx = c.transaction
                await self.send(call.MeterValues(
                    connector_id=c.connector_id, meter_value=[electrics.sample(sim, c, "Trigger")],
                    transaction_id=tx.transaction_id if tx else None))

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, call_unique_id: str, **_: Any) -> call_result.GetDiagnostics:
        file_name = f"diagnostics-{self.sim.id}-{iso(self.sim.wall_clock())}.log"
        self._answer("GetDiagnostics", "Accepted", call_unique_id, self._upload, location=location,
                     file_name=file_name)
        return call_result.GetDiagnostics(file_name=file_name)

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    async def _upload(self) -> None:
        for status in ("Uploading", "Uploaded"):
            self.sim.diagnostics_status = status
            await self.send(call.DiagnosticsStatusNotification(status=status))
            self.sim.emit("diagnostics", status=status)

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, call_unique_id: str,
                           **_: Any) -> call_result.UpdateFirmware:
        self._answer("UpdateFirmware", "Accepted", call_unique_id, self._install, location=location,
                     retrieve_date=retrieve_date)
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    def after_update_firmware(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    async def _install(self) -> None:
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            self.sim.firmware_status = status
            await self.send(call.FirmwareStatusNotification(status=status))
            self.sim.emit("firmware", status=status)

    # ---- Smart charging ----------------------------------------------------------

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, call_unique_id: str,
                                **_: Any) -> call_result.SetChargingProfile:
        status = smart_charging.set_charging_profile(self.sim, connector_id, cs_charging_profiles)
        self._answer("SetChargingProfile", status, call_unique_id, self._refresh(), connector_id=connector_id,
                     profile=cs_charging_profiles)
        return call_result.SetChargingProfile(status=status)

    @after(Action.set_charging_profile)
    def after_set_charging_profile(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, call_unique_id: str, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None,
                                  **_: Any) -> call_result.ClearChargingProfile:
        removed = smart_charging.clear_charging_profile(self.sim, profile_id=id, connector_id=connector_id,
                                                        purpose=charging_profile_purpose, stack_level=stack_level)
        status = "Accepted" if removed else "Unknown"
        self._answer("ClearChargingProfile", status, call_unique_id, self._refresh(), id=id,
                     connector_id=connector_id, purpose=charging_profile_purpose, stack_level=stack_level)
        return call_result.ClearChargingProfile(status=status)

    @after(Action.clear_charging_profile)
    def after_clear_charging_profile(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, call_unique_id: str,
                                  charging_rate_unit: str | None = None,
                                  **_: Any) -> call_result.GetCompositeSchedule:
        schedule = smart_charging.composite_schedule(self.sim, connector_id, duration, charging_rate_unit or "A")
        if schedule is None:
            self._answer("GetCompositeSchedule", "Rejected", call_unique_id, connector_id=connector_id)
            return call_result.GetCompositeSchedule(status="Rejected")
        self._answer("GetCompositeSchedule", "Accepted", call_unique_id, connector_id=connector_id)
        return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id,
                                                schedule_start=schedule["start_schedule"], charging_schedule=schedule)

    # ---- Local authorization list, reservation -------------------------------------

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, call_unique_id: str, **_: Any) -> call_result.GetLocalListVersion:
        sim = self.sim
        version = sim.local_auth.version if sim.config.flag("LocalAuthListEnabled") else -1
        self._answer("GetLocalListVersion", "Accepted", call_unique_id, list_version=version)
        return call_result.GetLocalListVersion(list_version=version)

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, call_unique_id: str,
                           local_authorization_list: list[dict] | None = None,
                           **_: Any) -> call_result.SendLocalList:
        sim = self.sim
        if not sim.config.flag("LocalAuthListEnabled"):
            status = "NotSupported"
        else:
            status = sim.local_auth.send(list_version, update_type, local_authorization_list or [],
                                         max_send=int(sim.config.number("SendLocalListMaxLength")),
                                         max_total=int(sim.config.number("LocalAuthListMaxLength")))
        self._answer("SendLocalList", status, call_unique_id, list_version=list_version, update_type=update_type)
        return call_result.SendLocalList(status=status)

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                       call_unique_id: str, parent_id_tag: str | None = None, **_: Any) -> call_result.ReserveNow:
        c = self.sim.connectors.get(connector_id)
        if c is None or connector_id == 0:  # ReserveConnectorZeroSupported is not offered
            status = "Rejected"
        elif c.fault is not None:
            status = "Faulted"
        elif not c.operative:
            status = "Unavailable"
        elif c.busy or c.car is not None or (c.reservation and c.reservation.reservation_id != reservation_id):
            status = "Occupied"
        else:
            c.reservation = Reservation(reservation_id, id_tag, profiles.parse_time(expiry_date), parent_id_tag)
            status = "Accepted"
        self._answer("ReserveNow", status, call_unique_id, self._refresh(), connector_id=connector_id,
                     reservation_id=reservation_id, id_tag=id_tag)
        return call_result.ReserveNow(status=status)

    @after(Action.reserve_now)
    def after_reserve_now(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, call_unique_id: str,
                              **_: Any) -> call_result.CancelReservation:
        reserved = [c for c in self.sim.connectors.values()
                    if c.reservation and c.reservation.reservation_id == reservation_id]
        for c in reserved:
            c.reservation = None
        status = "Accepted" if reserved else "Rejected"
        self._answer("CancelReservation", status, call_unique_id, self._refresh(), reservation_id=reservation_id)
        return call_result.CancelReservation(status=status)

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)
