"""A simulated OCPP 2.0.1 charging station: EVSEs with one connector each, cars, and the TransactionEvents.

The state lives here and survives reconnects and reboots (the device model,
the seqNo counter, queued TransactionEvents); one WebSocket connection lives
in `simulator.v201.link`, the answers to CSMS requests in
`simulator.v201.handlers`. The electrics (cars ramping to the limit in force,
meters integrating the current) are the 1.6 simulator's `simulator.electrics`
over the same `Connector` objects: a connector's `transaction` is set while
the power path is closed, which is what the physics asks.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from ocpp.v201 import call

from simulator import electrics, profiles, session
from simulator.car import MIN_CURRENT, Car
from simulator.connector import Connector, Fault
from simulator.local_auth import LocalAuthList
from simulator.metering import iso, readings
from simulator.outbox import Entry, Outbox
from simulator.runtime import Runtime
from simulator.security import SecurityState, make_csr
from simulator.session import NotConnected
from simulator.v201 import charging, link
from simulator.v201 import security as station_security
from simulator.v201.device_model import DeviceModel, standard
from simulator.v201.evse import Evse, Tx, token_key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SimulatedStation(Runtime):
    """An OCPP 2.0.1 AC charging station (subprotocol ocpp2.0.1) with cars that draw a realistic current.

    `url` is the CSMS's base URL; the station id is appended unless the URL
    already ends with it. `password` sends HTTP Basic auth (security profiles 1
    and 2), `tls` a TLS context from simulator.tls.client_context (2 and 3).
    """

    def __init__(self, station_id: str, url: str, *, password: str | None = None, evses: int = 1,
                 max_current: float = 32.0, phases: int = 3, voltage: float = 230.0, tx_updated_interval: int = 10,
                 ramp_seconds: float = 3.0, vendor: str = "SimVendor", model: str = "SimStation201",
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], datetime] = utcnow,
                 on_event: Callable[[str, dict], None] | None = None, reconnect_delay: float = 1.0,
                 response_timeout: float = 30.0, max_events: int = 10_000, tls: ssl.SSLContext | None = None,
                 report_items: int = 20, client_tls: ssl.SSLContext | None = None) -> None:
        if evses < 1 or not 1 <= phases <= 3:
            raise ValueError("a charging station has at least one EVSE and 1 to 3 phases")
        super().__init__(on_event=on_event, max_events=max_events)
        self.id = station_id
        suffix = "/" + quote(station_id, safe="")
        self.url = url if url.endswith(suffix) else url.rstrip("/") + suffix
        self.password, self.tls = password, tls
        # What it trusts the CSMS with (the site CA: profile 2) and, when it has a certificate from the site CA,
        # what it presents with it (profile 3): a network profile it switches to picks one (simulator/v201/security.py).
        self.trust_tls, self.client_tls = tls, client_tls
        self.max_current, self.phases, self.voltage, self.ramp_seconds = max_current, phases, voltage, ramp_seconds
        self.vendor, self.model, self.firmware_version = vendor, model, "2.0.1-sim"
        self.clock, self.wall_clock = clock, wall_clock
        self.reconnect_delay, self.response_timeout = reconnect_delay, response_timeout
        secure = tls is not None and self.url.startswith("wss://")   # a TLS context on ws:// is kept for later
        profile = 3 if secure and password is None else 2 if secure else 1 if password else 0
        if profile == 3 and client_tls is None:
            self.client_tls = tls
        self.device = DeviceModel(standard(station_id, evses=evses, heartbeat_interval=60,
                                           tx_updated_interval=tx_updated_interval, max_current=max_current,
                                           phases=phases, security_profile=profile, report_items=report_items))
        self.local_auth = LocalAuthList()
        self.security = SecurityState()
        self.iso15118 = False  # knob: signs V2G (ISO 15118) certificates too (SignV2GCertificate, A02)
        self.security_password_changed = False  # set a new BasicAuthPassword: reconnect (simulator/v201/security.py)
        self.stored_profiles: list[charging.Stored] = []
        # B09/A05: the NetworkConnectionProfiles per configurationSlot (slot 0: the one it was installed with);
        # OCPPCommCtrlr.NetworkConfigurationPriority picks one at each boot (simulator/v201/security.py).
        self.network_profiles: dict[int, dict] = {0: {
            "ocpp_version": "OCPP20", "ocpp_transport": "JSON", "ocpp_csms_url": url, "message_timeout": 30,
            "security_profile": profile, "ocpp_interface": "Wired0"}}
        self.ignores_limits = False  # fault knob, as on the 1.6 simulator (read by simulator.electrics)
        self.refuses_profiles = False  # knob: a station without smart charging answers every profile Rejected
        # knob: a station without the smart charging feature answers SetChargingProfile with CALLERROR NotSupported
        self.profiles_not_supported = False
        self.untriggerable: set[str] = set()  # TriggerMessage answers NotImplemented for these (knob, F06.FR.08)
        self.outbox = Outbox()  # TransactionEvents, in seqNo order, kept while offline
        self.security_events = Outbox()  # SecurityEventNotifications, kept while offline
        self.seq_no = 0  # the next TransactionEvent's; never reset, not by a reboot either
        self.registration: str | None = None  # the last BootNotification status
        self.connected = False  # a WebSocket is open (booted or not)
        self.boot_reason = "PowerUp"
        self.reset_pending = False  # Reset OnIdle waits for the last transaction to end
        # connector 0 stands for the station as a whole, as simulator.electrics expects
        self.connectors = {i: Connector(i) for i in range(evses + 1)}
        self.evses = {i: Evse(i, self.connectors[i]) for i in range(1, evses + 1)}
        self._status_lock = asyncio.Lock()
        self.queue_security_event("StartupOfTheDevice")

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and keep connected until cancelled; bugs end it loudly, a lost connection never."""
        try:
            async with asyncio.TaskGroup() as group:
                self._task_group = group
                group.create_task(self._sample_forever())
                group.create_task(self._tick_loop())
                group.create_task(session.connect_forever(self, "ocpp2.0.1", link.serve))
        finally:
            self._task_group = None

    @property
    def charging_profiles(self) -> list[profiles.Installed]:
        """The accepted profiles as simulator.profiles and simulator.electrics read them."""
        return [s.installed for s in self.stored_profiles]

    def emit(self, name: str, **data: Any) -> None:
        super().emit(name, **data)
        if name == "connect_failed" and "401" in str(data.get("error")):
            self.queue_security_event("FailedToAuthenticateAtCsms", str(data["error"]))

    def queue_security_event(self, kind: str, tech_info: str | None = None) -> None:
        """A SecurityEventNotification, sent once online (queued while offline, as A04 asks)."""
        at = iso(self.wall_clock())
        self.security_events.put(Entry(None, "SecurityEventNotification",  # type: ignore[arg-type]
                                       lambda: call.SecurityEventNotification(type=kind, timestamp=at,
                                                                              tech_info=tech_info)))
        self.emit("security_event", type=kind)

    def boot_request(self) -> call.BootNotification:
        return call.BootNotification(
            charging_station={"model": self.model, "vendor_name": self.vendor, "serial_number": self.id,
                              "firmware_version": self.firmware_version},
            reason=self.boot_reason)

    async def boot(self, send: Callable[[Any], Any]) -> Any:
        result = await send(self.boot_request())
        self.registration = result.status
        if result.status == "Accepted":
            if result.interval > 0:
                self.device.put("OCPPCommCtrlr", "HeartbeatInterval", str(result.interval))
                self.reconfigure()
            self.boot_reason = "PowerUp"
            self._accepted.set()
        self.emit("boot", status=result.status, interval=result.interval)
        return result

    async def reboot(self) -> None:
        """What a Reset ends in: the values written with RebootRequired apply, the station boots again (with the
        network profile NetworkConfigurationPriority names first)."""
        self.device.reboot()
        station_security.use_network_profile(self)
        self.boot_reason = "RemoteReset"
        self._accepted.clear()
        self.registration = None
        self.queue_security_event("ResetOrReboot")
        self.emit("reset")
        link = self.link
        if link is not None:
            await link.close()

    async def power_cycle(self) -> None:
        """The station loses its power and gets it back: what a real power cycle does, whether run() is running
        (its connection drops; it reconnects) or was cancelled (call run() again). Its transactions end
        (stoppedReason PowerLoss, queued, sent after the boot), the values written with RebootRequired apply,
        the registration is forgotten, and the next connection boots as after a power-up (BootNotification
        PowerUp, every EVSE's status, the security event StartupOfTheDevice). What a station keeps on its own
        storage stays: its device model, the queue, the seqNo counter, installed certificates and charging
        profiles (a TxProfile ends with its transaction). The cars stay plugged in.

        A plain `task.cancel(); run()` is a network blip, not this: the station resumes as it was."""
        self.reset_pending = False   # a Reset waiting for the transactions is overtaken
        for e in self.evses.values():
            if e.tx is not None:
                self.end_transaction(e, "AbnormalCondition", "PowerLoss")
            e.token, e.token_deadline, e.remote_start_id, e.pending_profile = None, None, None, None
            e.reported = None
        self.device.reboot()
        station_security.use_network_profile(self)
        self.boot_reason, self.registration = "PowerUp", None
        self._accepted.clear()
        self.queue_security_event("StartupOfTheDevice")
        self.emit("power_cycle")
        link = self.link
        if link is not None:
            await link.close()

    # ---- what a driver does ----------------------------------------------------------------

    async def plug_in(self, evse_id: int = 1, *, car_max_current: float = 32.0, car_phases: int = 3,
                      soc: float = 20.0) -> None:
        e = self._evse(evse_id)
        self.settle()
        e.connector.car = Car(max_current=car_max_current, phases=car_phases)
        e.connector.meter = replace(e.connector.meter, soc=soc)
        e.token_deadline = None
        self.emit("plug_in", evse_id=evse_id, car_max_current=car_max_current, car_phases=car_phases, soc=soc)
        self._advance(e, "CablePluggedIn")
        await self.sync_status()

    async def present_token(self, evse_id: int, id_token: str, token_type: str = "ISO14443") -> str:
        """A driver holds a card to the reader: authorizes, then starts, or stops the session it started."""
        e = self._evse(evse_id)
        token = {"id_token": id_token, "type": token_type}
        if e.token is not None and token_key(e.token) == token_key(token):
            self.end_authorization(e, "StopAuthorized", "Local")
            await self.sync_status()
            return "Accepted"
        status = await self.authorize(token)
        if status == "Accepted":
            self.authorized(e, token, "Authorized")
            await self.sync_status()
        return status

    async def stop(self, evse_id: int = 1, reason: str = "Local") -> None:
        """The driver ends the session at the station (its stop button)."""
        self.end_authorization(self._evse(evse_id), "StopAuthorized", reason)
        await self.sync_status()

    async def unplug(self, evse_id: int = 1) -> None:
        e = self._evse(evse_id)
        self.settle()
        e.connector.car = None
        e.connector.meter = replace(e.connector.meter, soc=None)
        self.emit("unplug", evse_id=evse_id)
        self._advance(e, "EVCommunicationLost", "EVDisconnected")
        await self.sync_status()

    async def report_fault(self, evse_id: int, faulted: bool, info: str = "") -> None:
        e = self._evse(evse_id)
        self.settle()
        e.connector.fault = Fault("Faulted", info[:50]) if faulted else None
        self.emit("fault", evse_id=evse_id, faulted=faulted)
        self._advance(e, "ChargingStateChanged")
        await self.sync_status()

    async def authorize(self, id_token: dict) -> str:
        """The idTokenInfo status; offline what the local list or cache says (C12, C13, C15)."""
        dm = self.device
        if id_token.get("type") == "NoAuthorization":
            status, source = "Accepted", "free"
        else:
            known = self.local_auth.lookup(token_key(id_token), use_list=dm.flag("LocalAuthListCtrlr", "Enabled"),
                                           use_cache=dm.flag("AuthCacheCtrlr", "Enabled"))
            if dm.flag("AuthCtrlr", "LocalPreAuthorize") and known == "Accepted":
                status, source = known, "local"
            else:
                try:
                    result = await self.send(call.Authorize(id_token=id_token))
                    status, source = result.id_token_info["status"], "CSMS"
                    self.local_auth.remember(token_key(id_token), status)
                except (NotConnected, TimeoutError):
                    source = "offline"
                    if known is not None and dm.flag("AuthCtrlr", "LocalAuthorizeOffline"):
                        status = known
                    else:
                        status = "Accepted" if dm.flag("AuthCtrlr", "OfflineTxForUnknownIdEnabled") else "Invalid"
        self.emit("authorize", id_token=id_token.get("id_token"), type=id_token.get("type"), status=status,
                  source=source)
        return status

    # ---- transactions ---------------------------------------------------------------------

    def authorized(self, e: Evse, token: dict, trigger: str, remote_start_id: int | None = None) -> None:
        """`token` may charge on `e` now: the transaction starts or learns who it is (synchronous)."""
        e.token, e.remote_start_id = token, remote_start_id
        if e.connector.car is None:
            timeout = self.device.number("TxCtrlr", "EVConnectionTimeOut")
            e.token_deadline = self.wall_clock() + timedelta(seconds=timeout) if timeout > 0 else None
        if e.tx is not None:
            e.tx.id_token, e.tx.stopped_reason = token, None
            if remote_start_id is not None:
                e.tx.remote_start_id = remote_start_id
        self._advance(e, trigger, id_token_changed=True)

    def end_authorization(self, e: Evse, trigger: str, reason: str) -> None:
        """The driver or the CSMS ends the session: the power path opens, the stop point may end the transaction."""
        if e.token is None and e.tx is None:
            raise ValueError(f"EVSE {e.id} has no session to stop")
        e.token, e.token_deadline = None, None
        if e.tx is not None:
            e.tx.stopped_reason = reason
        self._advance(e, trigger, reason)

    def _conditions(self, e: Evse) -> dict[str, bool]:
        plugged, authorized = e.connector.car is not None, e.token is not None
        closed = plugged and authorized and e.connector.fault is None
        return {"EVConnected": plugged, "ParkingBayOccupancy": plugged, "Authorized": authorized,
                "DataSigned": authorized, "PowerPathClosed": closed, "EnergyTransfer": closed}

    def _advance(self, e: Evse, trigger: str, stopped_reason: str = "Local", *, id_token_changed: bool = False) -> None:
        """After a change on `e`: start or end the transaction as TxStartPoint/TxStopPoint say, else report it."""
        met = self._conditions(e)
        self.settle()
        if e.tx is None:
            if any(met.get(p) for p in self.device.members("TxCtrlr", "TxStartPoint")):
                self._start(e, trigger)
        elif not all(met.get(p, True) for p in self.device.members("TxCtrlr", "TxStopPoint")):
            self.end_transaction(e, trigger, e.tx.stopped_reason or stopped_reason)
        else:
            self._wire(e)
            self.transaction_event(e, "Updated", trigger, id_token=e.token if id_token_changed else None)
        self._wire(e)
        self.settle()

    def _wire(self, e: Evse) -> None:
        """simulator.electrics lets current flow while a connector has a transaction: while the path is closed."""
        closed = e.tx is not None and self._conditions(e)["PowerPathClosed"] and e.connector.operative
        e.connector.transaction = e.tx if closed else None  # type: ignore[assignment]

    def _start(self, e: Evse, trigger: str) -> None:
        tx = Tx(e.id, str(uuid.uuid4()), self.wall_clock(), e.token, e.remote_start_id)
        e.tx = tx
        self._wire(e)
        if e.pending_profile is not None:  # RequestStartTransaction's TxProfile belongs to this transaction
            self.set_profile(e.id, {**e.pending_profile, "transaction_id": tx.transaction_id})
            e.pending_profile = None
        self.emit("transaction_started", evse_id=e.id, transaction_id=tx.transaction_id, trigger=trigger)
        self.transaction_event(e, "Started", trigger, id_token=e.token,
                               measurands=self.device.members("SampledDataCtrlr", "TxStartedMeasurands"),
                               context="Transaction.Begin")

    def end_transaction(self, e: Evse, trigger: str, reason: str) -> Entry:
        """End the transaction on `e` now and queue its Ended event (synchronous: safe inside handlers)."""
        tx = e.tx
        assert tx is not None
        e.connector.transaction = None  # type: ignore[assignment]
        entry = self.transaction_event(e, "Ended", trigger, stopped_reason=reason,
                               measurands=self.device.members("SampledDataCtrlr", "TxEndedMeasurands"),
                               context="Transaction.End")
        e.tx, e.token, e.token_deadline, e.remote_start_id = None, None, None, None
        self.stored_profiles = [s for s in self.stored_profiles
                                if s.installed.profile.transaction_id != tx.transaction_id]
        if e.scheduled_operative is not None:
            e.connector.operative, e.scheduled_operative = e.scheduled_operative, None
        self.emit("transaction_ended", evse_id=e.id, transaction_id=tx.transaction_id, reason=reason,
                  energy_wh=e.connector.meter.energy_wh)
        if self.reset_pending and not any(x.tx for x in self.evses.values()):
            self.reset_pending = False
            self.spawn(self.reboot)
        return entry

    def charging_state(self, e: Evse) -> str:
        c = e.connector
        if c.car is None:
            return "Idle"
        if c.transaction is None:
            return "EVConnected"
        if electrics.offered(self, c) < MIN_CURRENT:
            return "SuspendedEVSE"
        if c.car.max_current < MIN_CURRENT or (c.meter.soc is not None and c.meter.soc >= 100.0):
            return "SuspendedEV"
        return "Charging"

    def transaction_event(self, e: Evse, event_type: str, trigger: str, *, id_token: dict | None = None,
                          stopped_reason: str | None = None, measurands: Iterable[str] | None = None,
                          context: str = "Sample.Periodic") -> Entry:
        """Queue a TransactionEvent with the next seqNo (synchronous: safe inside handlers)."""
        tx = e.tx
        assert tx is not None
        self.settle()
        state = self.charging_state(e)
        tx.charging_state = state
        info: dict[str, Any] = {"transaction_id": tx.transaction_id, "charging_state": state}
        if tx.remote_start_id is not None:
            info["remote_start_id"] = tx.remote_start_id
        if stopped_reason is not None:
            info["stopped_reason"] = stopped_reason
        value = self.meter_value(e, measurands, context)
        seq_no, self.seq_no = self.seq_no, self.seq_no + 1
        payload = call.TransactionEvent(
            event_type=event_type, timestamp=iso(self.wall_clock()), trigger_reason=trigger, seq_no=seq_no,
            transaction_info=info, meter_value=[value] if value else None, offline=None if self.connected else True,
            evse={"id": e.id, "connector_id": 1}, id_token=id_token,
            number_of_phases_used=electrics.phases_used(self, e.connector) if state == "Charging" else None)
        self.emit("transaction_event", event_type=event_type, trigger_reason=trigger, seq_no=seq_no,
                  transaction_id=tx.transaction_id, charging_state=state, offline=not self.connected)
        return self.outbox.put(Entry(tx, "TransactionEvent", lambda: payload,  # type: ignore[arg-type]
                                     on_result=lambda result: self._token_answered(tx, result)))

    def _token_answered(self, tx: Tx, result: Any) -> None:
        """E01.FR.11/12, E05: a TransactionEvent's idTokenInfo other than Accepted de-authorizes the
        transaction; with StopTxOnInvalidId it ends (triggerReason Deauthorized, stoppedReason DeAuthorized)."""
        status = (getattr(result, "id_token_info", None) or {}).get("status", "Accepted")
        e = self.transaction(tx.transaction_id)
        self.emit("transaction_event_answer", transaction_id=tx.transaction_id, status=status)
        if status == "Accepted" or e is None or not self.device.flag("TxCtrlr", "StopTxOnInvalidId"):
            return
        e.token = None
        self.end_transaction(e, "Deauthorized", "DeAuthorized")

    def meter_value(self, e: Evse, measurands: Iterable[str] | None, context: str) -> dict | None:
        """A 2.0.1 MeterValue (numbers, unitOfMeasure) of `e` now; None when no measurand is configured."""
        chosen = self.device.members("SampledDataCtrlr", "TxUpdatedMeasurands") if measurands is None else measurands
        state = e.connector.snapshot(electrics.offered(self, e.connector), self.voltage)
        sampled = []
        for r in readings(state, voltage=self.voltage, phases=self.phases, measurands=chosen):
            item: dict[str, Any] = {"value": round(r.value, 1), "context": context, "measurand": r.measurand,
                                    "unit_of_measure": {"unit": r.unit}}
            if r.phase:
                item["phase"] = r.phase
            if r.location:
                item["location"] = r.location
            sampled.append(item)
        return {"timestamp": iso(self.wall_clock()), "sampled_value": sampled} if sampled else None

    def transaction(self, transaction_id: str) -> Evse | None:
        return next((e for e in self.evses.values() if e.tx and e.tx.transaction_id == transaction_id), None)

    async def delivered(self, entry: Entry) -> None:
        """While online, until the CSMS answered `entry`; offline it stays queued."""
        link = self.link
        if link is not None:
            await self._wait(lambda: entry.delivered or self.link is not link, None)

    # ---- smart charging ---------------------------------------------------------------------

    def set_profile(self, evse_id: int, raw: dict) -> str:
        """SetChargingProfile: Accepted or Rejected (K01), the reason as an event."""
        e = self.evses.get(evse_id)
        try:
            if self.refuses_profiles:
                raise ValueError("this station takes no charging profiles (refuses_profiles)")
            parsed = charging.parse(raw, received=self.wall_clock())
            charging.check(self.stored_profiles, evse_id, parsed, evses=len(self.evses),
                           transaction_id=e.tx.transaction_id if e and e.tx else None,
                           max_stack_level=int(self.device.number("SmartChargingCtrlr", "ProfileStackLevel")),
                           max_periods=int(self.device.number("SmartChargingCtrlr", "PeriodsPerSchedule")))
        except ValueError as exc:
            self.emit("charging_profile_rejected", evse_id=evse_id, reason=str(exc))
            return "Rejected"
        self.settle()  # the old limit held until now
        self.stored_profiles = charging.install(self.stored_profiles, charging.Stored(
            evse_id, raw, profiles.Installed(evse_id, parsed)))
        self._profiles_changed()
        self.emit("charging_profile", evse_id=evse_id, id=parsed.id, purpose=raw["charging_profile_purpose"],
                  stack_level=parsed.stack_level, unit=parsed.unit, limits=[p.limit for p in parsed.periods])
        return "Accepted"

    def clear_profiles(self, profile_id: int | None, criteria: dict | None) -> int:
        self.settle()
        self.stored_profiles, removed = charging.clear(self.stored_profiles, profile_id=profile_id, criteria=criteria)
        self._profiles_changed()
        return removed

    def _profiles_changed(self) -> None:
        self.settle()
        self.device.put("SmartChargingCtrlr", "Entries", str(len(self.stored_profiles)), instance="ChargingProfiles")

    def composite_schedule(self, evse_id: int, duration: int, unit: str) -> dict | None:
        """GetCompositeSchedule's schedule (snake_case), or None to reject."""
        if evse_id not in self.connectors or unit not in profiles.UNITS or duration < 0:
            return None
        c = self.connectors[evse_id]
        start = self.wall_clock()
        periods = profiles.composite(self.charging_profiles, evse_id, start, duration, electrics.tx_ref(c),
                                     voltage=self.voltage, phases=electrics.phases_used(self, c), unit=unit,
                                     ceiling_amps=self.max_current, sharing=electrics.sharing(self))
        return {"evse_id": evse_id, "duration": duration, "schedule_start": iso(start), "charging_rate_unit": unit,
                "charging_schedule_period": [
                    {"start_period": p.start, "limit": p.limit,
                     **({"number_phases": p.number_phases} if p.number_phases else {})} for p in periods]}

    def offered_current(self, evse_id: int) -> float:
        return electrics.offered(self, self.connectors[evse_id])

    # ---- availability -----------------------------------------------------------------------

    def change_availability(self, operative: bool, evse_id: int | None) -> str:
        """ChangeAvailability (G03, G04): Accepted, Scheduled while a transaction runs, Rejected for no such EVSE."""
        if evse_id not in (None, 0) and evse_id not in self.evses:
            return "Rejected"
        targets = list(self.evses.values()) if evse_id in (None, 0) else [self.evses[evse_id]]
        self.settle()
        status = "Accepted"
        for e in targets:
            if e.tx is not None and not operative:
                e.scheduled_operative, status = operative, "Scheduled"
            else:
                e.connector.operative, e.scheduled_operative = operative, None
                self._wire(e)
        self.connectors[0].operative = operative if evse_id in (None, 0) else self.connectors[0].operative
        self.settle()
        return status

    def connector_status(self, e: Evse) -> str:
        c = e.connector
        if c.fault is not None:
            return "Faulted"
        if not c.operative and e.tx is None:
            return "Unavailable"
        if c.car is not None or e.tx is not None:
            return "Occupied"
        return "Reserved" if c.reservation is not None else "Available"

    async def sync_status(self, force: Iterable[int] = (), via: Any = None) -> None:
        """StatusNotification for every connector whose status the CSMS has not heard yet."""
        forced = set(force)
        async with self._status_lock:
            link = via or self.link
            for e in self.evses.values():
                status = self.connector_status(e)
                self.device.put("EVSE", "AvailabilityState", status, evse=e.id)
                if link is None or (status == e.reported and e.id not in forced):
                    continue
                self.emit("status", evse_id=e.id, status=status)
                try:
                    await link.send(call.StatusNotification(timestamp=iso(self.wall_clock()), connector_status=status,
                                                            evse_id=e.id, connector_id=1))
                except NotConnected:
                    return
                except (OCPPError, TimeoutError) as exc:  # the next change or resync tries again
                    self.emit("call_error", action="StatusNotification", error=repr(exc))
                    return
                e.reported = status

    # ---- security -----------------------------------------------------------------------------

    def new_csr(self, certificate_type: str = "ChargingStationCertificate") -> call.SignCertificate:
        key, csr = make_csr(self.id, self.device.get("SecurityCtrlr", "OrganizationName"))
        self.security.pending_key = key
        return call.SignCertificate(csr=csr, certificate_type=certificate_type)

    # ---- helpers and periodic work -------------------------------------------------------------

    def _evse(self, evse_id: int) -> Evse:
        if evse_id not in self.evses:
            raise ValueError(f"{self.id} has no EVSE {evse_id}")
        return self.evses[evse_id]

    def settle(self) -> None:
        electrics.settle(self)

    async def _sample_forever(self) -> None:
        """TransactionEvent Updated with MeterValuePeriodic every TxUpdatedInterval, per running transaction."""
        while True:
            if await self.pause(self.device.number("SampledDataCtrlr", "TxUpdatedInterval")):
                for e in self.evses.values():
                    if e.tx is not None:
                        self.transaction_event(e, "Updated", "MeterValuePeriodic")

    async def _tick_loop(self) -> None:
        # Limits move with schedules and cars fill up: charging states and statuses follow within a second.
        while True:
            await asyncio.sleep(min(1.0, max(0.05, self.device.number("SampledDataCtrlr", "TxUpdatedInterval") or 1)))
            now = self.wall_clock()
            for e in self.evses.values():
                if e.token_deadline is not None and now >= e.token_deadline and e.connector.car is None:
                    e.token, e.token_deadline = None, None
                    self.emit("ev_connect_timeout", evse_id=e.id)
                    if e.tx is not None:
                        self.end_transaction(e, "EVConnectTimeout", "Timeout")
                if e.tx is not None and e.tx.charging_state != self.charging_state(e):
                    self.transaction_event(e, "Updated", "ChargingStateChanged")
            await self.sync_status()

    def snapshot(self) -> dict[int, dict[str, Any]]:
        """Per EVSE: status, transaction, charging state, currents, register, offered limit (for tests and the CLI)."""
        self.settle()
        out = {}
        for e in self.evses.values():
            c = e.connector
            state = c.snapshot(electrics.offered(self, c), self.voltage)
            out[e.id] = {"status": self.connector_status(e), "transaction_id": e.tx.transaction_id if e.tx else None,
                         "charging_state": self.charging_state(e), "current": state.current, "power_w": state.power_w,
                         "energy_wh": state.energy_wh, "offered": state.limit}
        return out


__all__ = ["Evse", "SimulatedStation", "Tx", "token_key"]
