"""How the simulated 2.0.1 station answers what the CSMS asks.

As in the 1.6 simulator every @on handler decides and answers without
awaiting a call; what has to be sent afterwards (NotifyReport,
ReportChargingProfiles, a triggered message, a TransactionEvent) is a
follow-up started once the answer is on the wire (simulator.follow_ups).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from simulator.follow_ups import FollowUp, FollowUps
from simulator.metering import iso
from simulator.security import adopt_certificate, check_signed
from simulator.v201 import security as station_security
from simulator.v201.evse import token_key

if TYPE_CHECKING:
    from datetime import datetime

    from simulator.local_auth import LocalAuthList
    from simulator.outbox import Entry, Outbox
    from simulator.v201.charging import Stored
    from simulator.v201.evse import Evse

SECURITY_COMPONENT = "SecurityCtrlr"
# Follow-ups after these actions' answers: one @after hook each, all alike.
FOLLOWED = (Action.get_base_report, Action.get_charging_profiles, Action.request_start_transaction,
            Action.request_stop_transaction, Action.reset, Action.trigger_message, Action.set_variables,
            Action.change_availability, Action.certificate_signed, Action.set_charging_profile,
            Action.clear_charging_profile)


class Station(station_security.SecuredStation, Protocol):
    """What the handlers ask of the 2.0.1 station (station.py), besides block A's: the station imports the link
    that serves with these handlers, so it is named here by shape."""

    evses: dict[int, Evse]
    local_auth: LocalAuthList
    outbox: Outbox
    stored_profiles: list[Stored]
    wall_clock: Callable[[], datetime]
    registration: str | None
    reset_pending: bool
    untriggerable: set[str]
    iso15118: bool
    profiles_not_supported: bool

    def spawn(self, coro_fn: FollowUp) -> None: ...

    def reconfigure(self) -> None: ...

    async def boot(self, send: Callable[[Any], Any]) -> Any: ...

    async def reboot(self) -> None: ...

    async def authorize(self, id_token: dict) -> str: ...

    def authorized(self, e: Evse, token: dict, trigger: str, remote_start_id: int | None = None) -> None: ...

    def end_authorization(self, e: Evse, trigger: str, reason: str) -> None: ...

    def transaction(self, transaction_id: str) -> Evse | None: ...

    def transaction_event(self, e: Evse, event_type: str, trigger: str, *, id_token: dict | None = None,
                          stopped_reason: str | None = None, measurands: Iterable[str] | None = None,
                          context: str = "Sample.Periodic") -> Entry: ...

    def end_transaction(self, e: Evse, trigger: str, reason: str) -> Entry: ...

    async def delivered(self, entry: Entry) -> None: ...

    def meter_value(self, e: Evse, measurands: Iterable[str] | None, context: str) -> dict | None: ...

    def set_profile(self, evse_id: int, raw: dict) -> str: ...

    def clear_profiles(self, profile_id: int | None, criteria: dict | None) -> int: ...

    def composite_schedule(self, evse_id: int, duration: int, unit: str) -> dict | None: ...

    def change_availability(self, operative: bool, evse_id: int | None) -> str: ...

    def queue_security_event(self, kind: str, tech_info: str | None = None) -> None: ...

    def new_csr(self, certificate_type: str = "ChargingStationCertificate") -> call.SignCertificate: ...

    async def sync_status(self, force: Iterable[int] = (), via: Any = None) -> None: ...


class StationHandlers(FollowUps, station_security.StationSecurityHandlers, ChargePoint):
    sim: Station

    async def send(self, payload: Any) -> Any:  # provided by session.Closable in the link
        raise NotImplementedError

    # ---- B Provisioning ----------------------------------------------------------------

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict], **_: Any) -> call_result.GetVariables:
        results = [self.sim.device.get_variable(item) for item in get_variable_data]
        self.sim.emit("request", action="GetVariables", status="Accepted", count=len(results))
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict], call_unique_id: str,
                         **_: Any) -> call_result.SetVariables:
        sim = self.sim
        results, changed = [], []
        for item in set_variable_data:
            result, key = station_security.set_variable(sim, item)  # BasicAuthPassword's rules, else the model's
            results.append(result)
            if key is not None:
                changed.append(key)
        if changed:
            sim.reconfigure()  # a new HeartbeatInterval or TxUpdatedInterval applies now
        if any(item["component"]["name"] == SECURITY_COMPONENT for item in set_variable_data):
            sim.queue_security_event("ReconfigurationOfSecurityParameters")
        self._answer("SetVariables", "Accepted", call_unique_id,
                     station_security.after_set_variables(sim, self.close) or sim.sync_status,
                     results=[r["attribute_status"] for r in results])
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, call_unique_id: str,
                           **_: Any) -> call_result.GetBaseReport:
        data = self.sim.device.report(report_base)
        per_message = int(self.sim.device.number("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"))

        async def notify_report() -> None:
            parts = [data[i:i + per_message] for i in range(0, len(data), per_message)] or [[]]
            generated_at = iso(self.sim.wall_clock())
            for seq_no, part in enumerate(parts):
                await self.send(call.NotifyReport(request_id=request_id, generated_at=generated_at, seq_no=seq_no,
                                                  report_data=part or None, tbc=seq_no < len(parts) - 1))
            self.sim.emit("notify_report", request_id=request_id, parts=len(parts), items=len(data))
        status = self._answer("GetBaseReport", "Accepted", call_unique_id, notify_report, report_base=report_base)
        return call_result.GetBaseReport(status=status)

    @on(Action.reset)
    def on_reset(self, type: str, call_unique_id: str, evse_id: int | None = None,
                 **_: Any) -> call_result.Reset:
        sim = self.sim
        busy = [e for e in sim.evses.values() if e.tx is not None]
        follow_up = None
        if evse_id is not None:
            status = "Rejected"  # resetting one EVSE is optional (B11.FR.*): this station does not
        elif type == "OnIdle" and busy:
            status, sim.reset_pending = "Scheduled", True
        else:
            status = "Accepted"

            async def reset_now() -> None:
                # B12.FR.*: the transactions end (ImmediateReset) and are reported before the reboot.
                entries = [sim.end_transaction(e, "ResetCommand", "ImmediateReset") for e in busy if e.tx]
                for entry in entries:
                    await sim.delivered(entry)
                await sim.reboot()
            follow_up = reset_now
        self._answer("Reset", status, call_unique_id, follow_up, type=type)
        return call_result.Reset(status=status)

    # ---- C/D Authorization ---------------------------------------------------------------

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        enabled = self.sim.device.flag("AuthCacheCtrlr", "Enabled")
        if enabled:
            self.sim.local_auth.clear_cache()
        status = "Accepted" if enabled else "Rejected"
        self.sim.emit("request", action="ClearCache", status=status)
        return call_result.ClearCache(status=status)

    @on(Action.send_local_list)
    def on_send_local_list(self, version_number: int, update_type: str,
                           local_authorization_list: list[dict] | None = None, **_: Any) -> call_result.SendLocalList:
        sim = self.sim
        if not sim.device.flag("LocalAuthListCtrlr", "Enabled"):
            status = "Failed"
        else:
            status = sim.local_auth.send(
                version_number, update_type, local_authorization_list or [],
                max_send=int(sim.device.number("LocalAuthListCtrlr", "ItemsPerMessage")),
                max_total=int(sim.device.number("LocalAuthListCtrlr", "Storage")),
                key=lambda item: token_key(item["id_token"]), info="id_token_info")
            sim.device.put("LocalAuthListCtrlr", "Entries", str(len(sim.local_auth.entries)))
        sim.emit("request", action="SendLocalList", status=status, version=version_number, update_type=update_type)
        return call_result.SendLocalList(status=status)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        self.sim.emit("request", action="GetLocalListVersion", status="Accepted", version=self.sim.local_auth.version)
        return call_result.GetLocalListVersion(version_number=self.sim.local_auth.version)

    # ---- E Transactions ------------------------------------------------------------------------

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, transaction_id: str | None = None,
                                  **_: Any) -> call_result.GetTransactionStatus:
        # E14.FR.01-08: messagesInQueue for that transaction (or any), ongoingIndicator only when one is named.
        sim = self.sim
        queued = [e for e in sim.outbox._entries
                  if transaction_id is None or getattr(e.transaction, "transaction_id", None) == transaction_id]
        ongoing = None if transaction_id is None else sim.transaction(transaction_id) is not None
        sim.emit("request", action="GetTransactionStatus", status="Accepted", transaction_id=transaction_id,
                 messages_in_queue=bool(queued), ongoing=ongoing)
        return call_result.GetTransactionStatus(messages_in_queue=bool(queued), ongoing_indicator=ongoing)

    # ---- F Remote control ----------------------------------------------------------------------

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict, remote_start_id: int, call_unique_id: str, evse_id: int | None = None,
                         charging_profile: dict | None = None, **_: Any) -> call_result.RequestStartTransaction:
        sim = self.sim
        candidates = [sim.evses.get(evse_id)] if evse_id else sorted(
            sim.evses.values(), key=lambda e: (e.connector.car is None, e.id))
        chosen = next((e for e in candidates if e is not None and e.token is None and e.connector.operative
                       and e.connector.fault is None), None)
        if charging_profile is not None and (charging_profile.get("charging_profile_purpose") != "TxProfile"
                                             or charging_profile.get("transaction_id") is not None):
            chosen = None  # F01.FR.08/11: only a TxProfile without transactionId
        if chosen is None:
            status = self._answer("RequestStartTransaction", "Rejected", call_unique_id, remote_start_id=remote_start_id)
            return call_result.RequestStartTransaction(status=status)
        running = chosen.tx.transaction_id if chosen.tx else None

        async def start() -> None:
            if sim.device.flag("AuthCtrlr", "AuthorizeRemoteStart") and await sim.authorize(id_token) != "Accepted":
                return
            chosen.pending_profile = charging_profile
            sim.authorized(chosen, id_token, "RemoteStart", remote_start_id)
            if chosen.tx is not None and chosen.pending_profile is not None:
                sim.set_profile(chosen.id, {**chosen.pending_profile, "transaction_id": chosen.tx.transaction_id})
                chosen.pending_profile = None
            await sim.sync_status()
        status = self._answer("RequestStartTransaction", "Accepted", call_unique_id, start,
                              remote_start_id=remote_start_id, evse_id=chosen.id)
        return call_result.RequestStartTransaction(status=status, transaction_id=running)

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, call_unique_id: str,
                        **_: Any) -> call_result.RequestStopTransaction:
        sim = self.sim
        e = sim.transaction(transaction_id)
        follow_up = None
        if e is not None:
            async def stop() -> None:
                if e.tx is not None and e.tx.transaction_id == transaction_id:
                    sim.end_authorization(e, "RemoteStop", "Remote")
                    await sim.sync_status()
            follow_up = stop
        status = self._answer("RequestStopTransaction", "Accepted" if e else "Rejected", call_unique_id, follow_up,
                              transaction_id=transaction_id)
        return call_result.RequestStopTransaction(status=status)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        e = self.sim.evses.get(evse_id)
        if e is None or connector_id != 1:
            status = "UnknownConnector"
        elif e.tx is not None and e.token is not None:
            status = "OngoingAuthorizedTransaction"  # F05.FR.02: the CSMS stops it first
        else:
            status = "Unlocked"
        self.sim.emit("request", action="UnlockConnector", status=status, evse_id=evse_id)
        return call_result.UnlockConnector(status=status)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, call_unique_id: str, evse: dict | None = None,
                           **_: Any) -> call_result.TriggerMessage:
        sim = self.sim
        evse_id = (evse or {}).get("id")
        chosen = [sim.evses[evse_id]] if evse_id in sim.evses else list(sim.evses.values())
        follow_up: Any = None
        if evse_id is not None and evse_id not in sim.evses:
            status = "Rejected"
        elif requested_message in sim.untriggerable:
            status = "NotImplemented"  # F06.FR.08: a message this station cannot send
        elif requested_message == "BootNotification":
            status = "Rejected" if sim.registration == "Accepted" else "Accepted"  # F06.FR.17
            follow_up = (lambda: sim.boot(self.send)) if status == "Accepted" else None
        elif requested_message == "Heartbeat":
            status, follow_up = "Accepted", lambda: self.send(call.Heartbeat())
        elif requested_message == "StatusNotification":
            status, follow_up = "Accepted", lambda: sim.sync_status(force=[e.id for e in chosen], via=self)
        elif requested_message == "TransactionEvent":
            running = [e for e in chosen if e.tx is not None]
            status = "Accepted" if running else "Rejected"

            async def events() -> None:
                for e in running:
                    if e.tx is not None:
                        sim.transaction_event(e, "Updated", "Trigger")
            follow_up = events
        elif requested_message == "MeterValues":
            status = "Accepted"

            async def meter_values() -> None:
                for e in chosen:
                    value = sim.meter_value(e, None, "Trigger")
                    if value:
                        await self.send(call.MeterValues(evse_id=e.id, meter_value=[value]))
            follow_up = meter_values
        elif requested_message in ("SignChargingStationCertificate", "SignV2GCertificate"):
            v2g = requested_message == "SignV2GCertificate"
            status = "Accepted" if sim.iso15118 or not v2g else "Rejected"

            async def csr() -> None:
                result = await self.send(sim.new_csr("V2GCertificate" if v2g else "ChargingStationCertificate"))
                sim.emit("sign_certificate", status=result.status)
            follow_up = csr if status == "Accepted" else None
        elif requested_message == "LogStatusNotification":
            status, follow_up = "Accepted", lambda: self.send(call.LogStatusNotification(status="Idle"))
        elif requested_message == "FirmwareStatusNotification":
            status, follow_up = "Accepted", lambda: self.send(call.FirmwareStatusNotification(status="Idle"))
        else:
            status = "NotImplemented"
        self._answer("TriggerMessage", status, call_unique_id, follow_up, requested_message=requested_message)
        return call_result.TriggerMessage(status=status)

    # ---- G Availability ----------------------------------------------------------------------

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str, call_unique_id: str, evse: dict | None = None,
                               **_: Any) -> call_result.ChangeAvailability:
        status = self.sim.change_availability(operational_status == "Operative", (evse or {}).get("id"))
        self._answer("ChangeAvailability", status, call_unique_id, self.sim.sync_status,
                     operational_status=operational_status)
        return call_result.ChangeAvailability(status=status)

    # ---- K Smart charging ------------------------------------------------------------------------

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, call_unique_id: str,
                                **_: Any) -> call_result.SetChargingProfile:
        if self.sim.profiles_not_supported:
            self.sim.emit("request", action="SetChargingProfile", status="NotSupported", evse_id=evse_id)
            raise NotSupportedError("this station has no smart charging (profiles_not_supported)")
        status = self.sim.set_profile(evse_id, charging_profile)
        self._answer("SetChargingProfile", status, call_unique_id, self.sim.sync_status, evse_id=evse_id)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, call_unique_id: str, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None,
                                  **_: Any) -> call_result.ClearChargingProfile:
        removed = self.sim.clear_profiles(charging_profile_id, charging_profile_criteria)
        status = self._answer("ClearChargingProfile", "Accepted" if removed else "Unknown", call_unique_id,
                              self.sim.sync_status, removed=removed)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(self, request_id: int, charging_profile: dict, call_unique_id: str,
                                 evse_id: int | None = None, **_: Any) -> call_result.GetChargingProfiles:
        from simulator.v201 import charging

        found = charging.select(self.sim.stored_profiles, evse_id, charging_profile)
        by_evse: dict[int, list[dict]] = {}
        for s in found:
            by_evse.setdefault(s.evse_id, []).append(s.raw)

        async def report() -> None:
            items = sorted(by_evse.items())
            for n, (evse, raws) in enumerate(items):
                await self.send(call.ReportChargingProfiles(request_id=request_id, charging_limit_source="CSO",
                                                            charging_profile=raws, evse_id=evse,
                                                            tbc=n < len(items) - 1))
        status = self._answer("GetChargingProfiles", "Accepted" if found else "NoProfiles", call_unique_id,
                              report if found else None, request_id=request_id)
        return call_result.GetChargingProfiles(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> call_result.GetCompositeSchedule:
        schedule = self.sim.composite_schedule(evse_id, duration, charging_rate_unit or "A")
        status = "Accepted" if schedule else "Rejected"
        self.sim.emit("request", action="GetCompositeSchedule", status=status, evse_id=evse_id)
        return call_result.GetCompositeSchedule(status=status, schedule=schedule)

    # ---- A Security ------------------------------------------------------------------------------

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, call_unique_id: str, certificate_type: str | None = None,
                              **_: Any) -> call_result.CertificateSigned:
        sim = self.sim
        detail = check_signed(certificate_chain, sim.security.pending_key, sim.id)
        if certificate_type == "V2GCertificate" and sim.iso15118 and not detail:
            sim.security.v2g_certificate = certificate_chain.encode()  # for ISO 15118, not for the CSMS link
            status = self._answer("CertificateSigned", "Accepted", call_unique_id, certificate_type=certificate_type)
            return call_result.CertificateSigned(status=status)
        if certificate_type not in (None, "ChargingStationCertificate"):
            detail = f"certificateType {certificate_type} is for ISO 15118, which this station lacks"
        follow_up = None
        if detail:
            sim.queue_security_event("InvalidChargingStationCertificate", detail[:255])
        elif adopt_certificate(sim.security, certificate_chain, sim.tls):
            follow_up = self.close  # A02.FR.*: the next connection presents the new certificate
        status = self._answer("CertificateSigned", "Rejected" if detail else "Accepted", call_unique_id, follow_up,
                              detail=detail)
        return call_result.CertificateSigned(status=status)


def _hook(action: Action) -> Any:
    def run_follow_up(self: StationHandlers, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)
    # The ocpp library finds hooks by their function's name: each needs its own.
    run_follow_up.__name__ = f"after_{action.name}"
    return after(action)(run_follow_up)


for _action in FOLLOWED:
    setattr(StationHandlers, f"after_{_action.name}", _hook(_action))
