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
- InstallCertificate / GetInstalledCertificateIds / DeleteCertificate and ExtendedTriggerMessage as the
  operator sends them (`edgectl security ...`, POST /chargers/{id}/commands/...) in 1.6 words reach a 2.0.1
  station as their 2.0.1 twins (as_v201_request): CentralSystemRootCertificate is CSMSRootCertificate,
  GetInstalledCertificateIds asks for a list of types; 2.0.1's own types (V2GRootCertificate,
  MORootCertificate) pass as they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import camel_to_snake_case
from ocpp.v201 import call as call201

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult, Commands
    from edge.ocpp.server import Site

log = logging.getLogger(__name__)

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
