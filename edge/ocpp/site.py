"""What the OCPP layer sees of the site: the record edge/app.py fills and hands to the OCPP server.

The charger sessions (edge/ocpp/v16/, edge/ocpp/v201/) and the services they call take a `Site` and import it
from here, never from the server (edge/ocpp/server.py imports every version's session, edge/ocpp/protocols.py)
nor from what builds the security extensions (edge/ocpp/security_messages.py builds on the log, firmware and
meter key services, which take a Site): imports within edge/ocpp then point one way, from the server down to
the sessions and from the sessions down to this page. What the sessions reach of the security extensions is
named here as protocols; edge/ocpp/security_messages.py's SecurityServices meets them by shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from edge.chargers import ChargerDirectory
    from edge.clock import Clock
    from edge.events import EventBus
    from edge.journal import Journal
    from edge.ocpp.commands import Commands
    from edge.sessions import Sessions
    from edge.stations.control import CommandResult, StationControl


class CertificateSigning(Protocol):
    """SignCertificate and the CertificateSigned after its answer (security_messages.CertificateService)."""

    async def sign_certificate(self, charger_id: str, csr: str, unique_id: str, *,
                               certificate_type: str | None = None) -> str: ...

    # What take_pending hands back is handed on to send_signed as it came (security_messages.Signed).
    def take_pending(self, unique_id: str) -> Any | None: ...

    async def send_signed(self, signed: Any) -> "CommandResult": ...


class RequestStatuses(Protocol):
    """Where a charger's status notifications of one kind of request go (logs_upload.LogUploads,
    firmware.SignedFirmware)."""

    async def status(self, charger_id: str, request_id: int | None, status: str) -> None: ...


class MeterKeyNews(Protocol):
    """What a charger says of its meter's signing key (signed_values.MeterKeys)."""

    async def announced(self, charger_id: str, data: object) -> str: ...

    async def carried(self, charger_id: str, key: str) -> None: ...

    def wanted(self, charger_id: str) -> None: ...


class Security(Protocol):
    """What the charger sessions reach of the security whitepaper's services (Site.security)."""

    certificates: CertificateSigning
    logs: RequestStatuses
    firmware: RequestStatuses
    meter_keys: MeterKeyNews


@dataclass
class Site:
    """What a charger session needs from the rest of the edge."""

    journal: Journal
    bus: EventBus
    clock: Clock
    directory: ChargerDirectory
    sessions: Sessions
    heartbeat_interval: int
    data_transfer_vendors: frozenset[str] = field(default_factory=frozenset)
    # Set once the OCPP server exists (commands go through its sessions).
    commands: "Commands | None" = None
    # The same, in domain words (edge/stations/control.py).
    control: "StationControl | None" = None
    # The security whitepaper's certificates, logs and signed firmware (edge/ocpp/security_messages.py).
    security: "Security | None" = None
    # Told of every Call a charger sent, once answered: (charger, action, "accepted" or the CallError code).
    on_call: "Callable[[str, str, str], None] | None" = None
    # The load manager (edge/dlm/manager.py), when load management is on: a 2.0.1 car's needs reach it
    # (edge/ocpp/v201/services.py, LoadManager.set_needs).
    load_manager: Any = None


def speaks_201(control: Any, charger_id: str) -> bool:
    """Whether `charger_id` is (or was last) connected with OCPP 2.0.1, asked of the site's StationControl
    (Site.control): the one question the site's code asks of a station's protocol (how to word a request whose
    words differ between 1.6 and 2.0.1: GetLog, the meter key...). A control that does not pick a protocol per
    station (none, or one adapter alone, as in tests and benches) speaks 1.6."""
    ask = getattr(control, "speaks_201", None)
    return bool(ask is not None and ask(charger_id))
