"""OCPP 2.0.1 block A (Security), CSMS side: the 2.0.1 words of what the 1.6 security code decides.

The decisions are the 1.6 ones and are not copied (docs/security.md): the CSR checks and the signing path
(site CA or cloud, edge/ocpp/security_messages.py), the password rotation (edge/ocpp/credentials.py), the
renewal before expiry, the handshake's profiles 1 to 3 (edge/ocpp/server.py, tls.py: version-agnostic).
What is 2.0.1's own is here:

- SignCertificate carries a certificateType (ChargingStationCertificate or V2GCertificate; none means
  both): the CSR goes the same way, and the CertificateSigned that answers it names the same type
  (A02.FR.14), also when the cloud signed it and it goes out after an edge restart.
- CertificateSigned: certificateChain and certificateType (1.6: certificateChain only).
- Asking for a CSR: TriggerMessage(SignChargingStationCertificate or SignV2GCertificate) where 1.6 sends
  ExtendedTriggerMessage(SignChargePointCertificate).
- The HTTP Basic password: SetVariables SecurityCtrlr.BasicAuthPassword, the password itself (16 to 40
  characters of identifierString, A00.FR.205), where 1.6 sends ChangeConfiguration(AuthorizationKey) with
  the key's bytes in hex. The value is masked wherever payloads are kept (edge/ocpp/masking.py).
- Raising a station's security profile (A05, TC_A_19): `upgrade_security_profile`. Where 1.6 sends
  ChangeConfiguration(SecurityProfile) and the charger keeps its URL, 2.0.1 moves the whole connection:
  SetNetworkProfile puts a NetworkConnectionProfile (the edge's wss:// URL for 2 and 3, the profile, JSON,
  OCPP20) in a configurationSlot the station does not use, SetVariables OCPPCommCtrlr.NetworkConfigurationPriority
  puts that slot first (the old one after it, B10's fallback), and a Reset (OnIdle: a charging car is not cut
  off) makes the station reconnect with it. The edge refuses, before anything is sent: a profile not above the
  one the station connects with now, one below the highest it was seen at (A05: no downgrade), one below the
  config's (it would be refused), 2 or 3 without the edge serving wss://, 2 without a password set for the
  station. A station without the CA or the certificate the new profile needs rejects the SetNetworkProfile
  itself (A05's prerequisites), and the edge stops there.
- InstallCertificate / GetInstalledCertificateIds / DeleteCertificate and ExtendedTriggerMessage as the
  operator sends them (`edgectl security ...`, POST /chargers/{id}/commands/...) in 1.6 words reach a 2.0.1
  station as their 2.0.1 twins (as_v201_request): CentralSystemRootCertificate is CSMSRootCertificate,
  GetInstalledCertificateIds asks for a list of types; 2.0.1's own types (V2GRootCertificate,
  MORootCertificate) pass as they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from ocpp.charge_point import camel_to_snake_case
from ocpp.v201 import call as call201

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult, Commands
    from edge.ocpp.security_state import Seen
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)


class Passwords(Protocol):
    """The station's HTTP Basic keys (edge/ocpp/credentials.py's Credentials)."""

    def keys_for(self, charger_id: str) -> Any: ...     # a KeySet: .open = no password is asked for


class Server(Protocol):
    """What raising a profile reads of the OCPP server: edge/ocpp/server.py's OcppServer, which serves 2.0.1
    with the session that imports this module (edge/ocpp/protocols.py), so it is named here by shape."""

    site: "Site"
    sessions: dict[str, Any]
    seen: "dict[str, Seen]"
    credentials: Passwords

    @property
    def bound_port(self) -> int: ...

    @property
    def bound_tls_port(self) -> int | None: ...

    def reached_as(self, charger_id: str) -> tuple[str | None, bool] | None: ...

# CertificateSigningUseEnumType: what a SignCertificate asks to be signed, and the TriggerMessage asking for it.
CSR_TRIGGERS = {"ChargingStationCertificate": "SignChargingStationCertificate",
                "V2GCertificate": "SignV2GCertificate"}
STATION_CERTIFICATE = "ChargingStationCertificate"
# 1.6's CertificateUse -> 2.0.1's InstallCertificateUse / GetCertificateIdUse (the others are 2.0.1's own).
CERTIFICATE_USES = {"CentralSystemRootCertificate": "CSMSRootCertificate"}
# 1.6's ExtendedTriggerMessage messages a 2.0.1 TriggerMessage has (the CSR's under its 2.0.1 name).
EXTENDED_TRIGGERS = {"SignChargePointCertificate": "SignChargingStationCertificate",
                     "BootNotification": "BootNotification", "Heartbeat": "Heartbeat",
                     "MeterValues": "MeterValues", "StatusNotification": "StatusNotification",
                     "LogStatusNotification": "LogStatusNotification",
                     "FirmwareStatusNotification": "FirmwareStatusNotification"}
PASSWORD_COMPONENT, PASSWORD_VARIABLE = "SecurityCtrlr", "BasicAuthPassword"


# -- the 2.0.1 words (pure) ------------------------------------------------------------------------

def certificate_signed(chain: str, certificate_type: str | None) -> tuple[str, dict[str, Any]]:
    """CertificateSigned for a CSR of `certificate_type` (None: the station did not say; nor does the edge)."""
    params: dict[str, Any] = {"certificateChain": chain}
    if certificate_type is not None:
        params["certificateType"] = certificate_type
    return "CertificateSigned", params


def csr_request(certificate_type: str | None) -> tuple[str, dict[str, Any]]:
    """The TriggerMessage asking the station for a new CSR (its own certificate unless told otherwise)."""
    return "TriggerMessage", {"requestedMessage": CSR_TRIGGERS[certificate_type or STATION_CERTIFICATE]}


def password_request(password: str) -> tuple[str, dict[str, Any]]:
    """SetVariables with the station's new HTTP Basic password (the password itself, not hex)."""
    return "SetVariables", {"setVariableData": [{
        "attributeValue": password, "component": {"name": PASSWORD_COMPONENT},
        "variable": {"name": PASSWORD_VARIABLE}}]}


def password_status(response: Any) -> str | None:
    """The station's answer to the password's SetVariables: its attributeStatus (Accepted, RebootRequired,
    Rejected, ...), None when the answer names no BasicAuthPassword."""
    for item in (response.get("setVariableResult") or []) if isinstance(response, dict) else []:
        if isinstance(item, dict) and (item.get("variable") or {}).get("name") == PASSWORD_VARIABLE:
            return item.get("attributeStatus")
    return None


def as_v201_request(payload: Any) -> Any | None:
    """A 1.6 security request (the operator's raw command) as its 2.0.1 twin, or None when it is none."""
    kind = type(payload).__name__
    if kind == "InstallCertificate":
        return call201.InstallCertificate(
            certificate_type=CERTIFICATE_USES.get(payload.certificate_type, payload.certificate_type),
            certificate=payload.certificate)
    if kind == "GetInstalledCertificateIds":
        return call201.GetInstalledCertificateIds(
            certificate_type=[CERTIFICATE_USES.get(payload.certificate_type, payload.certificate_type)])
    if kind == "DeleteCertificate":
        return call201.DeleteCertificate(certificate_hash_data=payload.certificate_hash_data)
    if kind == "ExtendedTriggerMessage" and payload.requested_message in EXTENDED_TRIGGERS:
        connector = getattr(payload, "connector_id", None)
        return call201.TriggerMessage(requested_message=EXTENDED_TRIGGERS[payload.requested_message],
                                      evse={"id": connector} if connector else None)
    return None


async def send(commands: "Commands", charger_id: str, action: str, params: dict[str, Any], *, actor: str,
               reason: str, guarded: bool = True) -> "CommandResult":
    """A 2.0.1 request in camelCase through the same guard, session and actions log as every command."""
    payload = getattr(call201, action)(**camel_to_snake_case(params))
    return await commands.deliver(charger_id, action, params, payload, actor=actor, reason=reason,
                                  guarded=guarded)


# -- the handlers' logic (edge/ocpp/v201/session.py's "A Security" delegates here) ---------------------

async def sign_certificate(site: "Site", charger_id: str, csr: str, certificate_type: str | None,
                           unique_id: str) -> str:
    """SignCertificate's status: the 1.6 checks and signing path, the type kept for CertificateSigned."""
    if site.security is None:
        log.warning("SignCertificate refused charger=%s: the security services are off", charger_id)
        return "Rejected"
    return await site.security.certificates.sign_certificate(charger_id, csr, unique_id,
                                                             certificate_type=certificate_type)


def after_sign_certificate(site: "Site", unique_id: str) -> Any | None:
    """The CertificateSigned to send once the answer is on the wire (a coroutine), or None."""
    security = site.security
    signed = security.certificates.take_pending(unique_id) if security is not None else None
    return security.certificates.send_signed(signed) if security is not None and signed is not None else None


# -- A05: raising a station's security profile --------------------------------------------------------------

PRIORITY_COMPONENT, PRIORITY_VARIABLE = "OCPPCommCtrlr", "NetworkConfigurationPriority"
# How long the station waits for an answer on the new connection (NetworkConnectionProfile.messageTimeout).
MESSAGE_TIMEOUT_S = 30


def upgrade_refusal(charger_id: str, target: int, *, current: int | None, highest: int | None, configured: int,
                    tls_port: int | None, password_set: bool) -> str | None:
    """Why the edge must not move `charger_id` to security profile `target` now (nothing is sent), or None.
    `current`: the profile of its connection now (None: not connected); `highest`: the highest it was seen at."""
    if target not in (1, 2, 3):
        return f"security profile {target} does not exist: 1 (HTTP Basic), 2 (TLS and HTTP Basic), 3 (TLS client " \
               "certificate)"
    if current is None:
        return f"{charger_id} is not connected: the new network profile is set over its connection. Nothing was sent"
    if highest is not None and target < highest:
        return (f"{charger_id} connected at security profile {highest} already: A05 never moves a station lower "
                "(a downgrade). Nothing was sent")
    if target <= current:
        return f"{charger_id} connects at security profile {current} now: {target} is no upgrade. Nothing was sent"
    if target < configured:
        return (f"{charger_id} is configured at security profile {configured}: at {target} it would be refused. "
                "Nothing was sent")
    if target >= 2 and tls_port is None:
        return (f"security profile {target} needs TLS and this edge serves no wss:// (set [ocpp.tls], see "
                "docs/security.md): the station would find no one to talk to. Nothing was sent")
    if target == 2 and not password_set:
        return (f"security profile 2 authenticates {charger_id} with HTTP Basic and no password is set for it: "
                f"`edgectl chargers password {charger_id} --rotate` first. Nothing was sent")
    return None


def csms_url(host_header: str | None, port: int, tls: bool) -> str:
    """The edge's OCPP URL as the station reached it (its Host header's name, not the edge's guess)."""
    host = (host_header or "127.0.0.1").strip()
    if host.startswith("["):                              # [v6]:port
        host = host[:host.index("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return f"{'wss' if tls else 'ws'}://{host}:{port}/ocpp"


def free_slot(priority: str | None) -> int:
    """A configurationSlot the station's NetworkConfigurationPriority does not name (the lowest)."""
    used = {int(s) for s in (priority or "").split(",") if s.strip().isdigit()}
    return next(n for n in range(len(used) + 1) if n not in used)


def network_profile_request(slot: int, url: str, target: int) -> dict[str, Any]:
    return {"configurationSlot": slot, "connectionData": {
        "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": MESSAGE_TIMEOUT_S,
        "securityProfile": target, "ocppInterface": "Wired0"}}


def priority_request(slot: int, priority: str | None) -> dict[str, Any]:
    rest = [s for s in (priority or "").split(",") if s.strip() and s.strip() != str(slot)]
    return {"setVariableData": [{"attributeValue": ",".join([str(slot), *rest]),
                                 "component": {"name": PRIORITY_COMPONENT}, "variable": {"name": PRIORITY_VARIABLE}}]}


async def upgrade_security_profile(server: Server, charger_id: str, target: int, *, actor: str, reason: str,
                                   slot: int | None = None, reset: str = "OnIdle") -> dict[str, Any]:
    """A05 for a 2.0.1 station: SetNetworkProfile, SetVariables NetworkConfigurationPriority, Reset, each in the
    actions log; it stops at the first that is refused. -> {"outcome": ok | invalid | rejected | error | timeout |
    not-connected, "error": why (invalid), "slot", "url", "steps": [CommandResult.as_dict()]}. The station comes
    back at the new profile by itself; the edge records the level it connects at (edge/ocpp/security_state.py)."""
    site = server.site
    session = server.sessions.get(charger_id)
    seen = server.seen.get(charger_id)
    configured = site.directory.configured(charger_id)
    why = upgrade_refusal(
        charger_id, target, current=seen.last_level if session is not None and seen is not None else None,
        highest=seen.level if seen is not None else None,
        configured=configured.security_profile if configured else 1, tls_port=server.bound_tls_port,
        password_set=not server.credentials.keys_for(charger_id).open)
    if why is None and getattr(session, "_ocpp_version", None) != "2.0.1":
        why = (f"{charger_id} speaks OCPP 1.6: its profile is raised with ChangeConfiguration(SecurityProfile) "
               "(docs/security.md). Nothing was sent")
    if why is not None:
        log.warning("security profile upgrade refused charger=%s target=%s: %s", charger_id, target, why)
        return {"outcome": "invalid", "error": why, "steps": []}
    assert site.commands is not None
    reached = server.reached_as(charger_id)
    port = server.bound_tls_port if target >= 2 else server.bound_port
    url = csms_url(reached[0] if reached else None, port or 0, target >= 2)
    steps: list[dict[str, Any]] = []

    async def step(action: str, params: dict[str, Any]) -> "CommandResult":
        result = await send(site.commands, charger_id, action, params, actor=actor,   # type: ignore[arg-type]
                            reason=reason or f"security profile {target} (A05)")
        steps.append(result.as_dict())
        return result

    asked = await step("GetVariables", {"getVariableData": [{"component": {"name": PRIORITY_COMPONENT},
                                                             "variable": {"name": PRIORITY_VARIABLE}}]})
    priority = None
    if asked.outcome == "ok":
        found = (asked.response.get("getVariableResult") or [{}])[0]
        priority = found.get("attributeValue") if found.get("attributeStatus") == "Accepted" else None
    chosen = slot if slot is not None else free_slot(priority)
    done = {"outcome": "ok", "slot": chosen, "url": url, "target": target, "steps": steps}
    for action, params, fine in (
            ("SetNetworkProfile", network_profile_request(chosen, url, target), ("Accepted",)),
            ("SetVariables", priority_request(chosen, priority), ("Accepted", "RebootRequired")),
            ("Reset", {"type": reset}, ("Accepted", "Scheduled"))):
        result = await step(action, params)
        response = result.response if isinstance(result.response, dict) else {}
        status = (response.get("setVariableResult") or [{}])[0].get("attributeStatus") \
            if action == "SetVariables" else response.get("status")
        if result.outcome not in ("ok", "rejected") or status not in fine:
            log.warning("security profile upgrade charger=%s target=%s stopped at %s: %s %s", charger_id, target,
                        action, result.outcome, result.response)
            return {**done, "outcome": result.outcome if result.outcome != "ok" else "rejected",
                    "error": f"{action}: {status or result.response}"}
    log.info("security profile upgrade charger=%s target=%s slot=%s url=%s: the station reboots into it",
             charger_id, target, chosen, url)
    # A05: once it connected at the new profile, a connection at the old one is refused (edge/ocpp/tls.py's
    # admission floor, the highest level seen). Until the OCPP server passes that floor, the config decides.
    return {**done, "then": (f"{charger_id} reconnects at security profile {target} after its reboot; raise its "
                             f"security_profile to {target} in the config so that the edge refuses it at a lower "
                             "one (A05)") if target > (configured.security_profile if configured else 1) else None}
