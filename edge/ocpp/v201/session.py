"""One OCPP 2.0.1 charging station's session with the edge (the 2.0.1 adapter's
incoming side). The server picks it for a connection that chose the
`ocpp2.0.1` subprotocol (edge/ocpp/protocols.py).

OCPP-J is the same RPC framing in both versions, so the framing and error
rules (frame depth, unique ids, one answer per Call, the boundary, nothing
before an accepted boot, a bug costing one Call an InternalError, `request`
giving up when the socket closes, `ready`) are the 1.6 session's, inherited,
not copied. What is 2.0.1's own: the library's 2.0.1 messages and schemas,
2.0.1's error names, its EVSE bounds, and the handlers below, which translate
into the same domain calls as 1.6's (the one registry of stations, the
journal, the bus). Only the handlers defined here are routed: an inherited
1.6 handler never sees a 2.0.1 payload.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import FormatViolationError, NotImplementedError as OcppNotImplemented, NotSupportedError, OCPPError
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.messages import Call
from ocpp.routing import after, on
from ocpp.v201 import call as call201, call_result
from ocpp.v201.enums import Action

from edge.events import Event
from edge.journal import Store
from edge.ocpp import boundary, security_events
from edge.ocpp.v16.session import ChargerSession
from edge.ocpp.v201 import transactions, translate
from edge.ocpp.v201 import security as security201
from edge.ocpp.v201 import charging_limits, services
from edge.ocpp.v201 import device_model

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

V201_ACTIONS = {a.value for a in Action}
# A Pending or Rejected station retries its boot at this interval (as for 1.6): short, so an adopted one gets in soon.
RETRY_BOOT_S = 60


class Ocpp201Session(ChargerSession):
    _call = call201
    _call_result = call_result
    _ocpp_version = "2.0.1"

    def __init__(self, charger_id: str, connection: Any, site: "Site", response_timeout: float):
        super().__init__(charger_id, connection, site, response_timeout)
        self.route_map = _own_routes(self.route_map, Ocpp201Session)
        # (evse, connector) -> its last 2.0.1 status: an EVSE's status reads from all of its connectors.
        self._connectors: dict[tuple[int, int], str] = {}
        # evse -> the site status its running transaction's chargingState says (Charging, SuspendedEV...):
        # what an Occupied EVSE reads as while that transaction runs (edge/ocpp/v201/transactions.py).
        self._charging: dict[int, str] = {}
        # evse -> the site status last written for it (so a chargingState repeated writes nothing).
        self._site_statuses: dict[int, str] = {}

    async def request(self, payload: Any) -> Any:
        """The edge's own call, as 2.0.1: a 1.6 request (the core's control is 1.6's so far) goes as
        its 2.0.1 twin, or is refused NotSupported, which the actions log keeps and nobody retries."""
        if not translate.is_v201_request(payload):
            twin = translate.as_v201_request(payload)
            if twin is None:
                raise NotSupportedError(
                    description=f"{type(payload).__name__} is not sent to OCPP 2.0.1 stations yet "
                                "(docs/ocpp-201.md)")
            payload = twin
        answer = await super().request(payload)
        if isinstance(payload, (call201.GetVariables, call201.SetVariables)):
            # Whoever asked, the answer updates the station's device model (edge/ocpp/v201/device_model.py).
            await device_model.remember_answer(self.site, self.id, payload, answer)
        return answer

    # -- framing: 2.0.1's words for the shared rules -------------------------------------------

    async def _route_call(self, msg: Call) -> str:
        """2.0.1's sense of the two "cannot" errors (OCPP-J 2.0.1, 4.3): NotSupported for a 2.0.1
        action this edge does not take (yet, or one only a CSMS sends), NotImplemented for an action
        2.0.1 does not have (1.6's StartTransaction among them). The rest is the shared routing."""
        if (isinstance(msg.action, str) and msg.action not in self.route_map
                and isinstance(msg.unique_id, str) and 0 < len(msg.unique_id) <= 36):
            if msg.action in V201_ACTIONS:
                error: OCPPError = NotSupportedError(
                    description=f"{msg.action} is not handled by this CSMS (docs/ocpp-201.md)")
            else:
                error = OcppNotImplemented(description=f"unknown action {boundary.echo(msg.action)}: "
                                                       "not an OCPP 2.0.1 message")
            return await self._reply_error(msg.unique_id, error)
        return await super()._route_call(msg)

    async def _handle_call(self, msg: Call) -> Any:
        # The shared boundary ran (edge.ocpp.boundary); 2.0.1's own bounds next, then the 2.0.1 schema.
        checked = translate.check_call(msg.action, msg.payload, self.site.clock.now_iso())
        msg.payload = checked.payload
        for repair in checked.repairs:
            log.warning("repaired charger=%s action=%s unique_id=%s: %s", self.id, msg.action, msg.unique_id, repair)
        return await super()._handle_call(msg)

    async def _reply_error(self, unique_id: str, error: OCPPError) -> str:
        # 2.0.1 names 1.6's FormationViolation FormatViolation (OCPP-J 2.0.1, 4.3).
        if error.code == "FormationViolation":
            error = FormatViolationError(description=error.description, details=error.details)
        return await super()._reply_error(unique_id, error)

    # -- B Provisioning -----------------------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot_notification(self, charging_station: dict, reason: str, **kwargs):
        status = self.site.directory.registration(self.id)
        info = translate.boot_info(charging_station)
        at = await self.boot_received(status, info, ocpp="2.0.1", boot_reason=reason)
        log.info("boot charger=%s ocpp=2.0.1 vendor=%s model=%s firmware=%s reason=%s registration=%s",
                 self.id, info["vendor"], info["model"], info["firmware_version"], reason, status)
        interval = self.site.heartbeat_interval if status == "Accepted" else RETRY_BOOT_S
        return call_result.BootNotification(current_time=at, interval=interval, status=status)

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs):
        # The answer is on the wire: the device model is read and the site's variables set (B07, B05).
        if self.registration == "Accepted":
            self.spawn(device_model.after_boot(self.site, self.id))

    def _note_ready(self) -> None:
        was_ready = self.ready
        super()._note_ready()
        if self.ready and not was_ready:
            # Each connection, booted or not: are transaction messages still queued (E14)?
            self.spawn(transactions.transaction_status(self.site, self.id, self.closed))
            # Its external limits (restored at the edge's start, or kept from before) followed while it stays.
            charging_limits.connected(self.site, self.id, spawn=self.spawn, closed=self.closed)

    @on(Action.notify_report)
    async def on_notify_report(self, request_id: int, generated_at: str, seq_no: int, tbc: bool = False,
                               report_data: list | None = None, **kwargs):
        try:
            await device_model.report_part(self.site, self.id, request_id, seq_no, tbc, generated_at, report_data)
        except device_model.ReportRefused as refused:
            log.warning("device model charger=%s report=%s part=%s refused: %s", self.id, request_id, seq_no, refused)
            raise PropertyConstraintViolationError(description=str(refused)[:500]) from None
        return call_result.NotifyReport()

    # -- A Security ---------------------------------------------------------------------------

    @on(Action.security_event_notification)
    async def on_security_event_notification(self, type: str, timestamp: str, **kwargs):  # noqa: A002 (OCPP's name)
        # The same fields as 1.6's whitepaper message: the same store and alerting.
        await security_events.received(self.site, self.id, type, timestamp, kwargs.get("tech_info"))
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, call_unique_id: str, **kwargs):
        # The 1.6 checks and signing path (site CA or cloud); CertificateSigned after this answer (@after).
        return call_result.SignCertificate(status=await security201.sign_certificate(
            self.site, self.id, csr, kwargs.get("certificate_type"), call_unique_id))

    @after(Action.sign_certificate)
    def after_sign_certificate(self, call_unique_id: str, **kwargs):
        sending = security201.after_sign_certificate(self.site, call_unique_id)
        if sending is not None:
            self.spawn(sending)

    # -- G Availability -----------------------------------------------------------------------

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=self.site.clock.now_iso())

    @on(Action.status_notification)
    async def on_status_notification(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int,
                                     **kwargs):
        self._connectors[(evse_id, connector_id)] = connector_status
        reported = translate.evse_status({c: s for (e, c), s in self._connectors.items() if e == evse_id})
        status = translate.connector_status(reported).value
        if reported == "Occupied" and evse_id in self._charging:
            status = self._charging[evse_id]   # what its transaction's chargingState says (block E)
        elif reported != "Occupied":
            self._charging.pop(evse_id, None)
        error_code = translate.error_code(reported)
        info = None if (connector_id, reported) == (1, connector_status) else \
            f"connector {connector_id}: {connector_status}; EVSE {evse_id} reads {reported}"
        await self._site_status(evse_id, status, error_code, info, timestamp, connector_status, connector_id)
        level = logging.WARNING if reported == "Faulted" else logging.INFO
        log.log(level, "status charger=%s evse=%s connector=%s status=%s (2.0.1 %s)",
                self.id, evse_id, connector_id, status, connector_status)
        return call_result.StatusNotification()

    async def _site_status(self, evse_id: int, status: str, error_code: str, info: str | None, timestamp: str,
                           ocpp_status: str, connector_id: int) -> None:
        """The site's connector status of an EVSE: journal, connector.status event, the sessions' evidence."""
        at = self.site.clock.now_iso()
        self._site_statuses[evse_id] = status
        # The site's "connector" is the EVSE (edge/stations/model.py): journal and events key by evse_id.
        await self.site.journal.write(Store.record_status, self.id, evse_id, status, error_code, info, None, None,
                                      timestamp, at)
        self.site.bus.publish(Event("connector.status", self.id, at, {
            "connector_id": evse_id, "status": status, "error_code": error_code, "timestamp": timestamp,
            "info": info, "ocpp_status": ocpp_status, "evse_connector": connector_id}))
        await self.site.sessions.connector_status(self.id, evse_id, status)

    # -- C Authorization ----------------------------------------------------------------------

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict, **kwargs):
        # The same decision as 1.6's Authorize, on the idToken's value whatever its type (NoAuthorization is
        # the site's free-vend tag); answered as 2.0.1's idTokenInfo (groupIdToken, cacheExpiryDateTime).
        tag = transactions.id_tag(id_token, self.site.sessions.free_vend_id_tag) or ""
        decision = await self.site.sessions.authorize(self.id, tag)
        return call_result.Authorize(id_token_info=transactions.id_token_info(decision))

    # -- E Transactions -----------------------------------------------------------------------

    @on(Action.transaction_event)
    async def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str, seq_no: int,
                                   transaction_info: dict, **kwargs):
        # The same sessions, samples and records as 1.6's transactions (edge/ocpp/v201/transactions.py).
        applied = await transactions.transaction_event(
            self.site, self.id, event_type, timestamp, seq_no, transaction_info, kwargs.get("evse"),
            kwargs.get("id_token"), kwargs.get("meter_value"), bool(kwargs.get("offline")))
        if applied.held:   # an event before its turn: does the station still have its events queued (E14)?
            self.spawn(transactions.settle_held(self.site, self.id, transaction_info["transaction_id"], self.closed))
        if applied.evse_id is not None and applied.status is not None:
            await self._refine(applied.evse_id, applied.status, timestamp)
        return call_result.TransactionEvent(id_token_info=applied.id_token_info)

    async def _refine(self, evse_id: int, status: str, timestamp: str) -> None:
        """An Occupied EVSE reads as its transaction's chargingState says (Charging, SuspendedEV...; Finishing
        after the Ended), as a 1.6 charger's connector does; what it reads otherwise is the StatusNotification's."""
        self._charging[evse_id] = status
        connectors = {c: s for (e, c), s in self._connectors.items() if e == evse_id}
        if not connectors or translate.evse_status(connectors) != "Occupied" or \
                self._site_statuses.get(evse_id) == status:
            return
        await self._site_status(evse_id, status, translate.error_code("Occupied"), None, timestamp, "Occupied",
                                min(c for c, s in connectors.items() if s == "Occupied"))
        log.info("status charger=%s evse=%s status=%s (2.0.1 Occupied, from the transaction's chargingState)",
                 self.id, evse_id, status)

    # -- J Meter values -----------------------------------------------------------------------

    @on(Action.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list, **kwargs):
        # The same samples store and signed values as 1.6's MeterValues (edge/ocpp/v201/services.py).
        await services.meter_values(self.site, self.id, evse_id, meter_value)
        return call_result.MeterValues()

    # -- K Smart charging ---------------------------------------------------------------------

    @on(Action.notify_ev_charging_needs)
    async def on_notify_ev_charging_needs(self, evse_id: int, charging_needs: dict, **kwargs):
        # The car's departure and energy (ISO 15118) as the running transaction's need, source iso15118.
        answer = await services.ev_charging_needs(self.site, self.id, evse_id, charging_needs, spawn=self.spawn,
                                                  closed=self.closed)
        return call_result.NotifyEVChargingNeeds(**answer)

    @after(Action.notify_ev_charging_needs)
    def after_notify_ev_charging_needs(self, evse_id: int, **kwargs):
        # Accepted: the SetChargingProfile follows the answer (K15, K16.FR.12, K17).
        services.after_ev_charging_needs(self.site, self.id, evse_id)

    @on(Action.notify_ev_charging_schedule)
    async def on_notify_ev_charging_schedule(self, time_base: str, evse_id: int, charging_schedule: dict,
                                             **kwargs):
        return call_result.NotifyEVChargingSchedule(**await services.ev_charging_schedule(
            self.site, self.id, evse_id, time_base, charging_schedule))

    @after(Action.notify_ev_charging_schedule)
    def after_notify_ev_charging_schedule(self, evse_id: int, **kwargs):
        # Rejected (above the site's limit): a new SetChargingProfile follows the answer (K15.FR.13).
        services.after_ev_charging_schedule(self.site, self.id, evse_id)

    @on(Action.report_charging_profiles)
    async def on_report_charging_profiles(self, request_id: int, charging_limit_source: str, evse_id: int,
                                          charging_profile: list, tbc: bool = False, **kwargs):
        await services.report_charging_profiles(self.site, self.id, request_id, evse_id, charging_limit_source,
                                                charging_profile, tbc, spawn=self.spawn, closed=self.closed)
        return call_result.ReportChargingProfiles()

    @on(Action.notify_charging_limit)
    async def on_notify_charging_limit(self, charging_limit: dict, **kwargs):
        # A limit set beside the edge: kept, and the load manager counts on no more for the EVSE(s) (K11/K12).
        try:
            await charging_limits.notify(self.site, self.id, kwargs.get("evse_id"), charging_limit,
                                         kwargs.get("charging_schedule"), spawn=self.spawn, closed=self.closed)
        except charging_limits.Refused as refused:
            log.warning("external limit charger=%s refused: %s", self.id, refused)
            raise PropertyConstraintViolationError(description=str(refused)[:500]) from None
        return call_result.NotifyChargingLimit()

    @after(Action.notify_charging_limit)
    def after_notify_charging_limit(self, **kwargs):
        # Notified without its schedule: the edge asks the station for it (GetChargingProfiles, TC_K_52).
        self.spawn(charging_limits.ask_for_limits(self.site, self.id))

    @on(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(self, charging_limit_source: str, **kwargs):
        # That source's limit is gone (K13): the load manager may count on the EVSE(s) again.
        try:
            await charging_limits.cleared(self.site, self.id, charging_limit_source, kwargs.get("evse_id"),
                                          spawn=self.spawn, closed=self.closed)
        except charging_limits.Refused as refused:
            raise PropertyConstraintViolationError(description=str(refused)[:500]) from None
        return call_result.ClearedChargingLimit()

    # -- L/N/P --------------------------------------------------------------------------------

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, status: str, **kwargs):
        await services.firmware_status(self.site, self.id, status, kwargs.get("request_id"))
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status_notification(self, status: str, **kwargs):
        await services.log_status(self.site, self.id, status, kwargs.get("request_id"))
        return call_result.LogStatusNotification()

    @on(Action.notify_event)
    async def on_notify_event(self, generated_at: str, seq_no: int, event_data: list, tbc: bool = False,
                              **kwargs):
        # Answered once the entries are on disk (acknowledged means committed); a failed write is an error answer.
        # Shielded: a connection closing meanwhile does not cancel the write, nor the alert that follows it.
        await asyncio.shield(services.notify_event(self.site, self.id, generated_at, seq_no, event_data, tbc))
        return call_result.NotifyEvent()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs):
        return call_result.DataTransfer(status=await services.data_transfer(
            self.site, self.id, vendor_id, kwargs.get("message_id"), kwargs.get("data")))


def _own_routes(route_map: dict[str, dict], cls: type) -> dict[str, dict]:
    """The routes of handlers `cls` itself defines: the library routes every decorated method an
    object has, the inherited 1.6 ones too, and those must never take a 2.0.1 payload."""
    own = set(vars(cls).values())
    kept: dict[str, dict] = {}
    for action, route in route_map.items():
        entry = {key: handler for key, handler in route.items()
                 if not callable(handler) or getattr(handler, "__func__", None) in own}
        if "_on_action" in entry:
            kept[action] = entry
    return kept
