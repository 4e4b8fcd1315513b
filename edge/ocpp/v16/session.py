"""One charger's OCPP 1.6J session with the edge (the 1.6 adapter's incoming side):
the `ocpp` library's routing with our handlers, plus the framing and error rules
the library leaves open. The server picks it for a connection that chose the
`ocpp1.6` subprotocol (edge/ocpp/protocols.py).

Handlers translate OCPP payloads to calls on the site's parts (sessions,
journal, directory) and back; they hold no business rules of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import (
    FormationViolationError,
    FormatViolationError,
    InternalError,
    NotImplementedError as OcppNotImplemented,
    NotSupportedError,
    OCPPError,
    SecurityError,
)
from ocpp.charge_point import _raise_key_error, remove_nones, serialize_as_dict
from ocpp.messages import Call, MessageType, unpack, validate_payload
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action
from websockets.exceptions import ConnectionClosed

from edge.events import Event
from edge.journal import Store
from edge.ocpp import boundary, data_transfer, key_case, quick_schema, security_events, signed_values
from edge.ocpp.v16.meter_values import parse_meter_values
from edge.ocpp.session import ChargerGone
from edge.ocpp.v16.authorization import id_tag_info
from edge.ocpp.strangers import remember_boot

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

V16_ACTIONS = {a.value for a in Action}
# The messages a charger sends all the time (and the answers to them): their schema checks say yes quickly
# (edge/ocpp/quick_schema.py).
FREQUENT = ("MeterValues", "Heartbeat", "StatusNotification", "StartTransaction", "StopTransaction", "Authorize",
            "BootNotification")
quick_schema.install("1.6", FREQUENT)
# Messages a charger may send before it is Accepted (OCPP 1.6 section 4.2.1).
ALLOWED_BEFORE_ACCEPTED = {"BootNotification"}


class ChargerSession(ChargePoint):
    def __init__(self, charger_id: str, connection: Any, site: "Site", response_timeout: float):
        super().__init__(charger_id, connection, response_timeout=response_timeout)
        self.site = site
        # Configured or adopted chargers are accepted from their first frame:
        # after an edge restart a charger keeps its session and does not boot again.
        self.registration = "Accepted" if site.directory.is_known(charger_id) else None
        self._stop_after_answer: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._frames_sent = 0
        # unique id -> the boundary's result for a call it repaired (while it is handled)
        self._repaired: dict[str, boundary.Checked] = {}
        # unique id of each request() under way -> whether its answer has arrived (see request)
        self._answered: dict[str, bool] = {}
        # "Charger ready": the charger has shown it listens on this connection (see _note_ready).
        self.ready = False
        # Set when this connection's reading loop ends: whatever waits on the charger gives up then.
        self.closed = asyncio.Event()
        self.pending = 0    # requests of ours queued or waiting for their answer
        self._strings_clean = False     # see _route

    async def start(self) -> None:
        try:
            await super().start()
        except ConnectionClosed:
            await self._read_last_answers()
            raise
        finally:
            self.closed.set()

    async def _read_last_answers(self, limit: int = 16) -> None:
        """The connection closed while a frame was being handled (its answer could not be sent): answers to
        our calls that arrived before the close are still read, so a call waiting for one gets it (a charger
        that answers CertificateSigned or a new password and reconnects at once). Its Calls are not taken."""
        for _ in range(limit):
            try:
                raw = await self._connection.recv()
            except Exception:       # noqa: BLE001 - closed (or flooding): nothing more to read
                return
            try:
                answer = unpack(raw)
            except Exception:       # noqa: BLE001 - not OCPP-J: nothing for a waiting call
                continue
            if (answer.message_type_id != MessageType.Call and isinstance(answer.unique_id, str)
                    and answer.unique_id in self._answered):
                self._answered[answer.unique_id] = True
                if self._call_lock.locked() and self._response_queue.qsize() < 8:
                    self._response_queue.put_nowait(answer)

    async def request(self, payload: Any) -> Any:
        """`call` for the rest of the edge: the charger's answer, or ChargerGone
        the moment this connection closes, whether the request was still queued
        behind another one (the call lock) or waiting for its answer. The
        library's call alone would wait out the whole response timeout, or
        raise ConnectionClosed into whoever asked."""
        if self.closed.is_set():
            raise ChargerGone("the connection closed")
        unique_id = str(uuid.uuid4())
        self._answered[unique_id] = False
        calling = asyncio.ensure_future(self.call(payload, suppress=False, unique_id=unique_id))
        closing = asyncio.ensure_future(self.closed.wait())
        self.pending += 1
        try:
            await asyncio.wait({calling, closing}, return_when=asyncio.FIRST_COMPLETED)
            if not calling.done() and self._answered.get(unique_id):
                # The answer came before the close (a charger that answers and reconnects at once, as after
                # a new certificate or password): the call ends without the socket, its schema check left.
                await asyncio.wait({calling}, timeout=self._response_timeout)
        finally:
            self._answered.pop(unique_id, None)
            self.pending -= 1
            closing.cancel()
            if not calling.done():
                calling.cancel()
        if calling.cancelled() or not calling.done():
            raise ChargerGone("the connection closed before the charger answered")
        try:
            return calling.result()
        except ConnectionClosed:
            raise ChargerGone("the connection closed while the request was sent") from None

    # -- framing and errors -------------------------------------------------

    async def route_message(self, raw_msg: str) -> None:
        """Replaces the library's router entry. Every frame gets an answer per
        OCPP-J or, for answers to our own calls, goes to the call waiting for
        it; whatever goes wrong on the way costs that one call an InternalError,
        never the connection or the edge (only a closed socket ends the session)."""
        sent_before = self._frames_sent
        try:
            await self._route(raw_msg)
            self._note_ready()
        except ConnectionClosed:
            raise
        except Exception as error:
            # A bug of ours (or of the library) met this frame: answer it, log
            # it loudly with the frame's start, keep serving.
            log.exception("internal error charger=%s frame=%s", self.id, boundary.echo(raw_msg[:200]))
            if self._frames_sent == sent_before and _is_call(raw_msg):
                await self._reply_error(boundary.unique_id_of(raw_msg), InternalError(
                    description="the central system failed on this message; it is logged",
                    details={"cause": type(error).__name__}))
            self._note_ready()

    def _note_ready(self) -> None:
        """The charger listens once it is Accepted and we have answered a frame of
        its own on this connection: its BootNotification (Accepted), or, for a
        known charger that does not boot again (the edge restarted, the link
        dropped), whatever it sends first. Many chargers refuse or ignore every
        request before their boot is accepted, so everything that configures a
        charger (local list, auth keys, default charging profile) waits for
        charger.ready, published here once per connection, after the answer to
        that frame is on the wire."""
        if self.ready or self.registration != "Accepted":
            return
        self.ready = True
        at = self.site.clock.now_iso()
        log.info("ready charger=%s", self.id)
        self.site.bus.publish(Event("charger.ready", self.id, at))

    async def _route(self, raw_msg: str) -> None:
        if boundary.nesting_depth_exceeds(raw_msg):
            # Checked before parsing: json and jsonschema recurse per level.
            await self._reply_error(boundary.unique_id_of(raw_msg), FormationViolationError(
                description=f"frame nests deeper than {boundary.MAX_DEPTH} levels; no OCPP 1.6 message does"))
            return
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            # Not JSON, not an array, missing elements, a bad MessageTypeId: all
            # are frames that do not conform to the OCPP-J PDU structure.
            cause = str((error.details or {}).get("cause", error.description))[:300]
            await self._reply_error(boundary.unique_id_of(raw_msg), FormationViolationError(
                description="frame is not an OCPP-J message", details={"cause": cause}))
            return
        if msg.message_type_id != MessageType.Call:
            if isinstance(msg.unique_id, str) and msg.unique_id in self._answered:
                self._answered[msg.unique_id] = True
            # An answer to our call. Kept only while a call of ours waits (it
            # holds the call lock): answers nobody asked for would pile up in
            # the library's queue, which is read only by a waiting call. Bounded
            # too while one waits: a peer may send faster than the call reads.
            if self._call_lock.locked() and self._response_queue.qsize() < 8:
                self._response_queue.put_nowait(msg)
            else:
                log.info("unsolicited answer dropped charger=%s unique_id=%s", self.id,
                         boundary.echo(msg.unique_id))
            return
        # Whether the boundary may skip its walk for lone surrogates: none can be in this frame's strings.
        self._strings_clean = boundary.surrogate_free(raw_msg)
        result = await self._route_call(msg)
        if self.site.on_call is not None:
            # Labels bounded for metrics: actions we know, chargers the site knows.
            known = isinstance(msg.action, str) and (msg.action in self.route_map or msg.action in V16_ACTIONS)
            self.site.on_call(self.id if self.site.directory.is_known(self.id) else "unknown",
                              msg.action if known else "unknown", result)

    async def _route_call(self, msg: Call) -> str:
        """Answers a Call of the charger's: "accepted" when it got a CallResult, else the CallError's code."""
        if not isinstance(msg.unique_id, str) or not msg.unique_id or len(msg.unique_id) > 36:
            return await self._reply_error(str(msg.unique_id)[:36], FormationViolationError(
                description="UniqueId must be a string of 1 to 36 characters"))
        if not isinstance(msg.action, str) or msg.action not in self.route_map:
            # 1.6: NotImplemented = action unknown to us; NotSupported = a known
            # 1.6 action we do not take (e.g. a central-system-only message).
            if isinstance(msg.action, str) and msg.action in V16_ACTIONS:
                error: OCPPError = NotSupportedError(description=f"{msg.action} is not handled by a central system")
            else:
                error = OcppNotImplemented(description=f"unknown action {boundary.echo(msg.action)}")
            return await self._reply_error(msg.unique_id, error)
        if self.registration != "Accepted" and msg.action not in ALLOWED_BEFORE_ACCEPTED:
            return await self._reply_error(msg.unique_id, SecurityError(
                description=f"charger is not accepted ({self.registration or 'no BootNotification yet'}); "
                            "send BootNotification and wait for Accepted"))
        try:
            # The boundary: the bounds the 1.6 schema leaves open (edge.ocpp.boundary),
            # then the schema itself (in the library's _handle_call). Handlers only
            # ever see what passed both. The boundary goes first because it is
            # cheap and assumes nothing of the payload's shape; validating the
            # schema twice would cost an executor round trip (~0.2 ms) per Call.
            clean, self._strings_clean = self._strings_clean, False
            checked = boundary.check_call(msg.action, msg.payload, self.site.clock.now_iso(), strings_clean=clean)
            msg.payload = checked.payload
            for repair in checked.repairs:
                log.warning("repaired charger=%s action=%s unique_id=%s: %s",
                            self.id, msg.action, msg.unique_id, repair)
            if checked.repairs:
                self._repaired[msg.unique_id] = checked
            await self._handle_call(msg)
            return "accepted"
        except OCPPError as error:
            return await self._reply_error(msg.unique_id, _as_v16(error))
        finally:
            self._repaired.pop(msg.unique_id, None)

    async def _handle_call(self, msg: Call) -> Any:
        """The library's ChargePoint._handle_call, step for step (its schema check, the handler with
        snake_case keywords and call_unique_id when it asks for it, a handler's exception answered as
        its CallError, the answer checked and sent, then the @after handler), with what it works out
        again for every frame worked out once: the payload's key conversions (edge/ocpp/key_case.py) and
        whether a handler takes call_unique_id."""
        try:
            handlers = self.route_map[msg.action]
        except KeyError:
            _raise_key_error(msg.action, self._ocpp_version)
            return None
        validate = not handlers.get("_skip_schema_validation", False)
        if validate:
            await validate_payload(msg, self._ocpp_version)
        snake_case_payload = key_case.camel_to_snake_case(msg.payload)
        try:
            handler = handlers["_on_action"]
        except KeyError:
            _raise_key_error(msg.action, self._ocpp_version)
        try:
            if _takes_unique_id(handler):
                response = handler(**snake_case_payload, call_unique_id=msg.unique_id)
            else:
                response = handler(**snake_case_payload)
            if inspect.isawaitable(response):
                response = await response
        except Exception as e:      # noqa: BLE001 - as the library: the handler's error is the answer
            self.logger.exception("Error while handling request '%s'", msg)
            await self._send(msg.create_call_error(e).to_json())
            return None
        answer = msg.create_call_result(key_case.snake_to_camel_case(remove_nones(serialize_as_dict(response))))
        if validate:
            await validate_payload(answer, self._ocpp_version)
        await self._send(answer.to_json())
        try:
            handler = handlers["_after_action"]
            if _takes_unique_id(handler):
                response = handler(**snake_case_payload, call_unique_id=msg.unique_id)
            else:
                response = handler(**snake_case_payload)
            # A task, as the library: a call made inside the after handler must not block this one.
            if inspect.isawaitable(response):
                asyncio.ensure_future(response)
        except KeyError:
            pass    # an @after handler is optional
        return response

    async def _send(self, message: str) -> None:
        self._frames_sent += 1
        await super()._send(message)

    async def _reply_error(self, unique_id: str, error: OCPPError) -> str:
        """Sends the CallError; its code."""
        log.warning("callerror charger=%s code=%s description=%r", self.id, error.code, error.description)
        await self._send(Call(unique_id, "", {}).create_call_error(error).to_json())
        return error.code

    # -- charge point initiated messages --------------------------------------

    async def boot_received(self, status: str, info: dict[str, Any], **event: Any) -> str:
        """A BootNotification, whatever the OCPP version: journaled (a stranger's as one bounded row), the
        registration noted, charger.booted published (with `event` added) when Accepted; -> its time."""
        at = self.site.clock.now_iso()
        if status == "Accepted":
            await self.site.journal.write(Store.record_boot, self.id, status.lower(), info, at)
        else:   # a stranger: one bounded row, no event, nothing for the cloud (strangers.py)
            await self.site.journal.write(remember_boot, self.id, status.lower(), info, at, self.site.directory.ids())
        self.registration = status
        if status == "Accepted":
            self.site.bus.publish(Event("charger.booted", self.id, at, {"status": status, **info, **event}))
        return at

    @on(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kwargs):
        status = self.site.directory.registration(self.id)
        info = {"vendor": charge_point_vendor, "model": charge_point_model,
                "serial_number": kwargs.get("charge_point_serial_number") or kwargs.get("charge_box_serial_number"),
                "firmware_version": kwargs.get("firmware_version"), "iccid": kwargs.get("iccid"),
                "imsi": kwargs.get("imsi"), "meter_type": kwargs.get("meter_type"),
                "meter_serial_number": kwargs.get("meter_serial_number")}
        at = await self.boot_received(status, info)
        log.info("boot charger=%s vendor=%s model=%s firmware=%s registration=%s",
                 self.id, charge_point_vendor, charge_point_model, info["firmware_version"], status)
        # Pending/Rejected chargers retry at this interval; keep it short so an
        # adopted charger gets in soon.
        interval = self.site.heartbeat_interval if status == "Accepted" else 60
        return call_result.BootNotification(current_time=at, interval=interval, status=status)

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=self.site.clock.now_iso())

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str, **kwargs):
        at = self.site.clock.now_iso()
        await self.site.journal.write(
            Store.record_status, self.id, connector_id, status, error_code, kwargs.get("info"),
            kwargs.get("vendor_id"), kwargs.get("vendor_error_code"), kwargs.get("timestamp"), at)
        self.site.bus.publish(Event("connector.status", self.id, at, {
            "connector_id": connector_id, "status": status, "error_code": error_code, **kwargs}))
        # Evidence for the connector's sessions (Available ends them, Charging proves a refused start runs).
        await self.site.sessions.connector_status(self.id, connector_id, status)
        level = logging.WARNING if error_code != "NoError" or status == "Faulted" else logging.INFO
        log.log(level, "status charger=%s connector=%s status=%s error=%s info=%r",
                self.id, connector_id, status, error_code, kwargs.get("info"))
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **kwargs):
        decision = await self.site.sessions.authorize(self.id, id_tag)
        return call_result.Authorize(id_tag_info=id_tag_info(decision))

    @on(Action.start_transaction)
    async def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                                   call_unique_id: str, **kwargs):
        time_note = self._time_note(call_unique_id, "start")
        if time_note:
            # The charger's clock was not set and the boundary gave this start
            # its arrival time. A retry (the answer got lost) arrives later, so
            # it would not match the first copy by time: match it by what
            # cannot differ within one session.
            running = await self.site.journal.read(Store.active_transactions, self.id)
            timestamp = _same_session_start(running, connector_id, id_tag, meter_start) or timestamp
        result = await self.site.sessions.start(
            self.id, connector_id, id_tag, meter_start, timestamp, kwargs.get("reservation_id"), time_note)
        if result.remote_stop:
            self._stop_after_answer.add(result.transaction_id)
        return call_result.StartTransaction(transaction_id=result.transaction_id,
                                            id_tag_info=id_tag_info(result.decision, result.answered))

    @after(Action.start_transaction)
    def after_start_transaction(self, **kwargs):
        # Runs once the answer is on the wire, so the charger knows the id we stop.
        # Our own task (referenced until done): the library would not keep one.
        for tx in list(self._stop_after_answer):
            self._stop_after_answer.discard(tx)
            self.spawn(self.site.control.remote_stop(self.id, tx, actor="edge",
                                                     reason="token not authorized at start (site policy: stop)"))

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _time_note(self, unique_id: str, what: str) -> str | None:
        """For the record's flags: the boundary replaced this call's timestamp (an unset charger clock)."""
        checked = self._repaired.get(unique_id)
        if checked is None or not checked.repaired("timestamp"):
            return None
        return f"charger clock not set: its {what} time was replaced by the time the edge received it"

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, call_unique_id: str,
                                  **kwargs):
        # Signed readings first: the stop makes the record, which carries them.
        await signed_values.received(self.site, self.id, 0, transaction_id, kwargs.get("transaction_data"))
        # Read as of no connector: Sessions sets the transaction's own once it knows it is the charger's.
        samples, problems = parse_meter_values(0, None, kwargs.get("transaction_data") or [],
                                               self.site.clock.now_iso())
        _, decision = await self.site.sessions.stop(
            self.id, transaction_id, meter_stop, timestamp, kwargs.get("reason"), kwargs.get("id_tag"),
            samples, self._time_note(call_unique_id, "stop"), problems)
        return call_result.StopTransaction(id_tag_info=id_tag_info(decision) if decision else None)

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list, **kwargs):
        await signed_values.received(self.site, self.id, connector_id, kwargs.get("transaction_id"), meter_value)
        transaction_id = kwargs.get("transaction_id")
        samples, problems = parse_meter_values(connector_id, transaction_id, meter_value, self.site.clock.now_iso())
        await self.site.sessions.meter_values(self.id, connector_id, transaction_id, samples, problems)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs):
        # The one decision both versions take (edge/ocpp/data_transfer.py): a meter key announcement, a
        # configured vendor's message journaled, or UnknownVendorId.
        return call_result.DataTransfer(status=await data_transfer.decide(
            self.site, self.id, vendor_id, kwargs.get("message_id"), kwargs.get("data")))

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(self, status: str, **kwargs):
        await self.site.journal.write(Store.record_firmware_status, self.id, "diagnostics", status,
                                      self.site.clock.now_iso())
        log.info("diagnostics charger=%s status=%s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, status: str, **kwargs):
        await self.site.journal.write(Store.record_firmware_status, self.id, "firmware", status,
                                      self.site.clock.now_iso())
        log.info("firmware charger=%s status=%s", self.id, status)
        return call_result.FirmwareStatusNotification()

    # -- OCPP 1.6 security whitepaper (edition 3) messages -----------------------------

    @on(Action.security_event_notification)
    async def on_security_event_notification(self, type: str, timestamp: str, **kwargs):  # noqa: A002 (OCPP's name)
        await security_events.received(self.site, self.id, type, timestamp, kwargs.get("tech_info"))
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, call_unique_id: str, **kwargs):
        # Signed (and recorded) now; CertificateSigned goes out from a task after this answer (see @after).
        security = self.site.security
        status = "Rejected" if security is None else await security.certificates.sign_certificate(
            self.id, csr, call_unique_id)
        return call_result.SignCertificate(status=status)

    @after(Action.sign_certificate)
    def after_sign_certificate(self, call_unique_id: str, **kwargs):
        security = self.site.security
        signed = security.certificates.take_pending(call_unique_id) if security is not None else None
        if signed is not None:
            self.spawn(security.certificates.send_signed(signed))

    @on(Action.log_status_notification)
    async def on_log_status_notification(self, status: str, **kwargs):
        if self.site.security is not None:
            await self.site.security.logs.status(self.id, kwargs.get("request_id"), status)
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status_notification(self, status: str, **kwargs):
        if self.site.security is not None:
            await self.site.security.firmware.status(self.id, kwargs.get("request_id"), status)
        return call_result.SignedFirmwareStatusNotification()


def _same_session_start(running: list[dict[str, Any]], connector_id: int, id_tag: str,
                        meter_start: int) -> str | None:
    """The start time journaled for the running session this StartTransaction
    repeats: same connector, same token, same meter start."""
    for row in running:
        if (row["connector_id"], row["id_tag"], row["meter_start"]) == (connector_id, id_tag, meter_start):
            return row["start_time"]
    return None


# handler function -> whether it takes call_unique_id (the library asks inspect.signature for every frame)
_TAKES_UNIQUE_ID: dict[Any, bool] = {}


def _takes_unique_id(handler: Any) -> bool:
    function = getattr(handler, "__func__", handler)
    takes = _TAKES_UNIQUE_ID.get(function)
    if takes is None:
        takes = _TAKES_UNIQUE_ID[function] = "call_unique_id" in inspect.signature(handler).parameters
    return takes


def _is_call(raw: str | bytes) -> bool:
    """Whether a frame we failed on looks like a Call (those get an answer)."""
    head = raw[:16].lstrip() if isinstance(raw, str) else raw[:16].decode("utf-8", "replace").lstrip()
    return head.startswith("[") and head[1:].lstrip().startswith("2")


def _as_v16(error: OCPPError) -> OCPPError:
    """OCPP 1.6 names the 'bad structure' error FormationViolation (2.0 renamed
    it FormatViolation, which is what the library raises). Details are cut to
    a short cause (echoing a 256 KiB frame back helps nobody), or the boundary's
    field and (already shortened) value."""
    details = error.details or {}
    if "field" in details:
        kept = {"field": str(details["field"])[:100], "value": str(details.get("value"))[:100]}
    else:
        kept = {"cause": str(details.get("cause", error.description))[:300]}
    if isinstance(error, FormatViolationError):
        return FormationViolationError(description=error.description, details=kept)
    return type(error)(description=error.description, details=kept)
