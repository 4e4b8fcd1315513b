"""One way to send any central-system-initiated OCPP 1.6 message to a charger.

Parameters are given as in the OCPP 1.6 JSON (camelCase), so what an operator
reads in the spec is what they type. Every attempt, including refused ones,
lands in the actions log with who asked, why, and what came back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from decimal import Decimal
from typing import Any, Callable

from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import ValidationError
from ocpp.v16 import call

from edge.clock import Clock
from edge.events import Event, EventBus
from edge.journal import Journal, Store
from edge.ocpp.masking import mask_payload
from edge.ocpp.session import ChargerGone
# The outcome record and the retry rule are the domain's (the core reads them); re-exported for callers.
from edge.stations.control import CommandResult, worth_retrying  # noqa: F401

log = logging.getLogger(__name__)

# Every message a 1.6 central system may send (core, firmware, local list,
# reservation, smart charging and remote trigger profiles, and the security
# whitepaper's: docs/security.md).
ACTIONS: dict[str, type] = {name: getattr(call, name) for name in (
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "ClearChargingProfile",
    "DataTransfer", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds", "GetLog",
    "InstallCertificate", "SignedUpdateFirmware",
)}
_BY_LOWER = {name.lower(): name for name in ACTIONS}
# Answers that mean the charger understood but said no.
_REFUSALS = {"Rejected", "NotSupported", "NotImplemented", "UnknownMessageId", "UnknownVendorId", "Failed",
             "UnlockFailed", "Faulted", "Occupied", "Unavailable", "VersionMismatch", "NotFound",
             "InvalidCertificate", "RevokedCertificate",
             # 2.0.1's (UnlockConnector, ChangeAvailability's and Reset's are shared above)
             "UnknownConnector", "OngoingAuthorizedTransaction",
             # a 2.0.1 SetVariables result's attributeStatus
             "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"}


def _refused(response: dict[str, Any]) -> bool:
    """The station said no: its status, or (2.0.1 SetVariables) any variable's attributeStatus."""
    results = response.get("setVariableResult") or []
    return response.get("status") in _REFUSALS or any(
        isinstance(r, dict) and r.get("attributeStatus") in _REFUSALS for r in results)


class CommandError(ValueError):
    """The request itself is wrong (unknown action, bad parameters)."""


def resolve_action(name: str) -> str:
    """'reset', 'Reset', 'remote-start-transaction' -> the OCPP action name."""
    key = name.replace("-", "").replace("_", "").lower()
    if key not in _BY_LOWER:
        raise CommandError(f"unknown action {name!r}; one of: {', '.join(sorted(ACTIONS))}")
    return _BY_LOWER[key]


def build_payload(action: str, params: dict[str, Any]) -> Any:
    cls = ACTIONS[action]
    kwargs = camel_to_snake_case(params)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise CommandError(f"{action}: unknown parameter(s) {', '.join(snake_to_camel_case({k: 0 for k in unknown}))}; "
                           f"expected {', '.join(snake_to_camel_case({k: 0 for k in fields}))}")
    missing = [name for name, f in fields.items()
               if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise CommandError(f"{action}: missing required parameter(s) "
                           f"{', '.join(snake_to_camel_case({k: 0 for k in missing}))}")
    return cls(**kwargs)


class Commands:
    def __init__(self, sessions: dict, journal: Journal, clock: Clock, bus: EventBus,
                 guard: Callable[[str, str, dict[str, Any]], str | None] | None = None):
        self._sessions = sessions       # charger id -> live ChargerSession (owned by the OCPP server)
        self._journal = journal
        self._clock = clock
        self._bus = bus
        # Why a command must not be sent at all (a key or security profile the edge cannot serve:
        # edge/ocpp/credentials.py), asked before anything reaches the charger.
        self._guard = guard

    def is_connected(self, charger_id: str) -> bool:
        return charger_id in self._sessions

    def is_ready(self, charger_id: str) -> bool:
        """Connected and listening (charger.ready seen on this connection): what
        the edge's own configuring waits for."""
        session = self._sessions.get(charger_id)
        return session is not None and session.ready

    async def send(self, charger_id: str, action: str, params: dict[str, Any] | None = None, *,
                   actor: str, reason: str, guarded: bool = True) -> CommandResult:
        """guarded=False: the edge's own key rotation, which may set AuthorizationKey."""
        params = params or {}
        try:
            action = resolve_action(action)
            payload = build_payload(action, params)
        except CommandError as exc:
            return await self._record(charger_id, action, params, actor, reason, "invalid", str(exc))
        return await self.deliver(charger_id, action, params, payload, actor=actor, reason=reason, guarded=guarded)

    async def deliver(self, charger_id: str, action: str, params: dict[str, Any], payload: Any, *, actor: str,
                      reason: str, guarded: bool = True) -> CommandResult:
        """A request built already: `payload` is the library's message of the station's version (2.0.1's
        from edge/ocpp/v201/control.py), `params` the same in camelCase for the actions log."""
        refusal = self._guard(charger_id, action, params) if guarded and self._guard else None
        if refusal is not None:
            return await self._record(charger_id, action, params, actor, reason, "invalid", refusal)
        session = self._sessions.get(charger_id)
        if session is None:
            return await self._record(charger_id, action, params, actor, reason, "not-connected",
                                      "charger is not connected")
        try:
            answer = await session.request(payload)
        except ChargerGone as gone:
            return await self._record(charger_id, action, params, actor, reason, "not-connected",
                                      f"charger is not connected: {gone}")
        except asyncio.TimeoutError:
            return await self._record(charger_id, action, params, actor, reason, "timeout",
                                      f"no answer within {session._response_timeout:g} s")
        except (ValidationError, OCPPError) as exc:
            # Either our request failed the schema (a bad parameter value) or the
            # charger answered with a CALLERROR / a malformed CALLRESULT.
            return await self._record(charger_id, action, params, actor, reason, "error", _describe(exc))
        response = plain_numbers(snake_to_camel_case(remove_nones(serialize_as_dict(answer))))
        outcome = "rejected" if _refused(response) else "ok"
        return await self._record(charger_id, action, params, actor, reason, outcome, response)

    async def _record(self, charger_id: str, action: str, params: dict, actor: str, reason: str,
                      outcome: str, response: Any) -> CommandResult:
        # Charger keys never reach the actions log, the API or events (masking.py).
        params, response = mask_payload(params), mask_payload(response)
        action_id = await self._journal.write(
            Store.record_action, self._clock.now_iso(), charger_id, actor, action, params, reason, outcome, response)
        log.info("action charger=%s action=%s actor=%s outcome=%s reason=%r", charger_id, action, actor, outcome,
                 reason)
        done = {"action_id": action_id, "action": action, "actor": actor, "outcome": outcome, "params": params}
        if action == "RemoteStartTransaction" and isinstance(params, dict):
            # The same in domain words, for the core (edge.cdr.watch counts a remote start as a start attempt),
            # whoever asked: the edge, an operator's or the cloud's raw command.
            done["start"] = {"connector_id": params.get("connectorId"), "id_tag": str(params.get("idTag", ""))}
        elif action == "RequestStartTransaction" and isinstance(params, dict):   # 2.0.1's remote start
            done["start"] = {"connector_id": params.get("evseId"),
                             "id_tag": str((params.get("idToken") or {}).get("idToken", ""))}
        self._bus.publish(Event("command.done", charger_id, self._clock.now_iso(), done))
        return CommandResult(action_id, charger_id, action, outcome, response, request=params)


def plain_numbers(value: Any) -> Any:
    """The charger's answer with the library's Decimals (charging schedule
    limits, GetCompositeSchedule) as JSON numbers: 20 stays 20, 7.5 is 7.5."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_numbers(v) for v in value]
    return value


def _describe(exc: Exception) -> str:
    if isinstance(exc, OCPPError):
        cause = (exc.details or {}).get("cause") if isinstance(exc.details, dict) else None
        return f"{exc.code}: {exc.description}" + (f" ({cause})" if cause else "")
    return str(exc)
