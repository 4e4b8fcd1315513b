"""The security requests the edge sends on its own, in the words of the station's OCPP version.

The decisions (when to send a certificate, ask for a CSR, rotate a password; what the answer means for
the journal) are made once, in edge/ocpp/security_messages.py and credentials.py; what goes on the wire
differs: 1.6's security whitepaper (here) or 2.0.1's block A (edge/ocpp/v201/security.py). The station's
version is the protocol it is (or was last) connected with (edge/ocpp/control.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from edge.ocpp.site import Site, speaks_201
from edge.ocpp.v201 import security as v201

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult, Commands

Request = tuple[str, dict[str, Any]]        # (action, camelCase parameters)


def authorization_key_value(password: str) -> str:
    """What ChangeConfiguration(AuthorizationKey) carries: the key's bytes as hex digits."""
    return password.encode("ascii").hex()


class Words(Protocol):
    version: str

    def certificate_signed(self, chain: str, certificate_type: str | None) -> Request: ...
    def csr_request(self, certificate_type: str | None) -> Request: ...
    def password_request(self, password: str) -> Request: ...
    def password_status(self, response: Any) -> str | None: ...
    async def send(self, commands: "Commands", charger_id: str, action: str, params: dict[str, Any], *,
                   actor: str, reason: str, guarded: bool = True) -> "CommandResult": ...


class Ocpp16Words:
    """The 1.6 security whitepaper's (edition 3)."""
    version = "1.6"

    def certificate_signed(self, chain: str, certificate_type: str | None) -> Request:
        return "CertificateSigned", {"certificateChain": chain}     # 1.6 has no certificate types

    def csr_request(self, certificate_type: str | None) -> Request:
        return "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}

    def password_request(self, password: str) -> Request:
        return "ChangeConfiguration", {"key": "AuthorizationKey", "value": authorization_key_value(password)}

    def password_status(self, response: Any) -> str | None:
        return response.get("status") if isinstance(response, dict) else None

    async def send(self, commands: "Commands", charger_id: str, action: str, params: dict[str, Any], *,
                   actor: str, reason: str, guarded: bool = True) -> "CommandResult":
        return await commands.send(charger_id, action, params, actor=actor, reason=reason, guarded=guarded)


class Ocpp201Words:
    """2.0.1's block A (edge/ocpp/v201/security.py)."""
    version = "2.0.1"

    def certificate_signed(self, chain: str, certificate_type: str | None) -> Request:
        return v201.certificate_signed(chain, certificate_type)

    def csr_request(self, certificate_type: str | None) -> Request:
        return v201.csr_request(certificate_type)

    def password_request(self, password: str) -> Request:
        return v201.password_request(password)

    def password_status(self, response: Any) -> str | None:
        return v201.password_status(response)

    async def send(self, commands: "Commands", charger_id: str, action: str, params: dict[str, Any], *,
                   actor: str, reason: str, guarded: bool = True) -> "CommandResult":
        return await v201.send(commands, charger_id, action, params, actor=actor, reason=reason, guarded=guarded)


OCPP16_WORDS, OCPP201_WORDS = Ocpp16Words(), Ocpp201Words()


def words_for(site: "Site", charger_id: str) -> Words:
    """The words of the protocol `charger_id` is connected with (or was last; 1.6 for one never seen)."""
    return OCPP201_WORDS if speaks_201(site.control, charger_id) else OCPP16_WORDS


async def send(site: "Site", charger_id: str, request: Request, *, actor: str, reason: str,
               guarded: bool = True, words: Words | None = None) -> "CommandResult":
    assert site.commands is not None
    action, params = request
    return await (words or words_for(site, charger_id)).send(site.commands, charger_id, action, params,
                                                            actor=actor, reason=reason, guarded=guarded)
