"""The OCPP 1.6 security whitepaper's (edition 3) certificate messages, central-system side.

- SignCertificate (use case A02/A03): the charger sends a CSR; the edge signs it with the site CA
  (certificates.sign_csr: the subject is always the charge point id, the key at least the whitepaper's
  size) while answering, and sends CertificateSigned from a task once the answer is on the wire (the ocpp
  library awaits @on handlers inline: a call() from one would wait for an answer nobody reads). What the CA
  signed is kept in issued_certificates with the charger's CertificateSigned answer.
- Renewal before expiry (OCA TC_074): the edge asks a charger whose client certificate (as seen at its last
  profile 3 connection) ends within `renew_days` for a new CSR with ExtendedTriggerMessage
  (SignChargePointCertificate), at most once a day per charger, checked hourly and at each connection.
- InstallCertificate, DeleteCertificate, GetInstalledCertificateIds and ExtendedTriggerMessage are plain
  commands (edge/ocpp/commands.py; `edgectl security ...` builds their parameters).

The site CA's files are read at each signing, so `edgectl ca init` on a running edge takes effect at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.clock import parse_iso
from edge.events import Event
from edge.ocpp import certificates

if TYPE_CHECKING:
    from edge.journal import Store
    from edge.ocpp.commands import CommandResult
    from edge.ocpp.firmware import SignedFirmware
    from edge.ocpp.logs_upload import LogUploads
    from edge.ocpp.rotation import SiteRotation
    from edge.ocpp.security_state import Seen
    from edge.ocpp.server import Site
    from edge.ocpp.signed_values import MeterKeys

log = logging.getLogger(__name__)

# The manufacturers' roots a firmware signing certificate must chain to (edge/ocpp/firmware.py), in the state
# directory: one or more PEM certificates, put there by the installer.
MANUFACTURER_ROOTS = "tls/manufacturer-roots.pem"
RENEW_DAYS = 30
RENEW_CHECK_EVERY = 3600.0
ASK_AGAIN_AFTER = timedelta(days=1)
# CertificateSigned.certificateChain's maxLength in the 1.6 security schema.
CHAIN_MAX_CHARS = 10_000


@dataclass(frozen=True)
class Signed:
    charger_id: str
    certificate: bytes      # PEM
    serial: str
    not_after: str


# -- pure decisions ------------------------------------------------------------------

def renewal_due(seen: "Seen | None", now: datetime, *, renew_days: int, last_asked: datetime | None) -> bool:
    """Whether to ask this charger for a new CSR now: it connected with a client certificate that ends
    within renew_days (or already ended), and it was not asked within the last day."""
    if seen is None or seen.level < 3 or not seen.cert_not_after:
        return False
    ends = parse_iso(seen.cert_not_after)
    if ends is None or ends - now > timedelta(days=renew_days):
        return False
    return last_asked is None or now - last_asked >= ASK_AGAIN_AFTER


def hash_data(cert_pem: bytes) -> dict[str, str]:
    """A certificate's CertificateHashData (1.6 security): SHA256 of its issuer's DER name and of its
    issuer's public key (the certificate's own for a self-signed root: what chargers keep roots as), its
    serial in hex. DeleteCertificate names a certificate this way."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    issuer_key = cert.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(issuer_key).hexdigest(),
            "serialNumber": format(cert.serial_number, "x")}


# -- journal (on the journal's thread) -------------------------------------------------

def record_issued(store: "Store", signed: Signed, sha256: str, at: str) -> None:
    store.conn.execute(
        "INSERT INTO issued_certificates (serial, charger_id, sha256, not_after, issued_at) VALUES (?, ?, ?, ?, ?)",
        (signed.serial, signed.charger_id, sha256, signed.not_after, at))


def record_answer(store: "Store", serial: str, answer: str) -> None:
    store.conn.execute("UPDATE issued_certificates SET answer = ? WHERE serial = ?", (answer, serial))


def issued_certificates(store: "Store", charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, args = ("WHERE charger_id = ?", (charger_id,)) if charger_id else ("", ())
    rows = store.conn.execute(
        f"SELECT serial, charger_id, sha256, not_after, issued_at, answer FROM issued_certificates {where} "
        "ORDER BY issued_at DESC LIMIT ?", (*args, limit))
    return [dict(zip(("serial", "charger_id", "sha256", "not_after", "issued_at", "answer"), r)) for r in rows]


# -- the shell ---------------------------------------------------------------------------

class CertificateService:
    """Signs chargers' CSRs with the site CA and renews their certificates before they end."""

    def __init__(self, site: "Site", ca: tuple[Path, Path] | None, *, seen: Callable[[], "dict[str, Seen]"],
                 connected: Callable[[], list[str]], renew_days: int = RENEW_DAYS,
                 check_every: float = RENEW_CHECK_EVERY):
        self.site = site
        self.ca = ca                # (certificate, key) of the site CA; None: no [ocpp.tls], nothing is signed
        self._seen, self._connected = seen, connected
        self.renew_days, self.check_every = renew_days, check_every
        self._pending: dict[str, Signed] = {}       # SignCertificate's unique id -> what to send after the answer
        self._asked: dict[str, datetime] = {}       # charger -> when it was last asked for a CSR
        self.signed_count = 0

    async def sign_certificate(self, charger_id: str, csr: str, unique_id: str) -> str:
        """SignCertificate's answer. Accepted: the certificate is signed and recorded, and goes out as
        CertificateSigned after the answer (send_pending). Rejected: why is logged and in the network log."""
        try:
            if self.ca is None:
                raise certificates.CertificateError("this edge has no site CA ([ocpp.tls] is not set)")
            try:
                ca_pem, ca_key = self.ca[0].read_bytes(), self.ca[1].read_bytes()
            except OSError as exc:
                raise certificates.CertificateError(f"cannot read the site CA ({exc.strerror}: {exc.filename}); "
                                                    "make it with `edgectl ca init`") from None
            now = self.site.clock.now()
            pem = certificates.sign_csr(ca_pem, ca_key, csr.encode(), charger_id, now=now)
        except certificates.CertificateError as exc:
            log.warning("SignCertificate refused charger=%s: %s", charger_id, exc)
            self._note(charger_id, f"SignCertificate rejected: {exc}")
            return "Rejected"
        cert = x509.load_pem_x509_certificate(pem)
        signed = Signed(charger_id, pem, format(cert.serial_number, "x"), cert.not_valid_after_utc.isoformat())
        await self.site.journal.write(record_issued, signed, certificates.fingerprint(cert), self.site.clock.now_iso())
        self._pending[unique_id] = signed
        self.signed_count += 1
        log.info("SignCertificate charger=%s: signed serial=%s until %s", charger_id, signed.serial, signed.not_after)
        return "Accepted"

    def take_pending(self, unique_id: str) -> Signed | None:
        return self._pending.pop(unique_id, None)

    async def send_signed(self, signed: Signed) -> "CommandResult":
        """CertificateSigned with the new certificate (the site CA is the chain's root: chargers hold it)."""
        assert self.site.commands is not None
        result = await self.site.commands.send(
            signed.charger_id, "CertificateSigned", {"certificateChain": signed.certificate.decode()},
            actor="edge", reason=f"SignCertificate: the site CA signed serial {signed.serial}")
        answer = result.response.get("status", result.outcome) if isinstance(result.response, dict) else (
            f"{result.outcome}: {str(result.response)[:200]}")
        await self.site.journal.write(record_answer, signed.serial, answer)
        self.site.bus.publish(Event("security.certificate_signed", signed.charger_id, self.site.clock.now_iso(),
                                    {"serial": signed.serial, "not_after": signed.not_after, "answer": answer}))
        return result

    async def renew(self, charger_id: str, *, actor: str, reason: str) -> "CommandResult":
        """Ask the charger for a new CSR (it answers with SignCertificate, handled above)."""
        assert self.site.commands is not None
        self._asked[charger_id] = self.site.clock.now()
        return await self.site.commands.send(
            charger_id, "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"},
            actor=actor, reason=reason)

    async def renew_due(self) -> list[str]:
        """Every connected charger whose certificate ends soon is asked for a CSR; returns whom."""
        now, seen, asked = self.site.clock.now(), self._seen(), []
        for charger_id in self._connected():
            if renewal_due(seen.get(charger_id), now, renew_days=self.renew_days,
                           last_asked=self._asked.get(charger_id)):
                ends = seen[charger_id].cert_not_after
                await self.renew(charger_id, actor="edge",
                                 reason=f"its client certificate ends {ends} (renewed {self.renew_days} days ahead)")
                asked.append(charger_id)
        return asked

    async def run(self) -> None:
        """Hourly, and whenever a charger is ready on a new connection (its certificate may be the old one)."""
        ready = self.site.bus.subscribe(maxsize=1000)
        try:
            while True:
                await self.renew_due()
                try:
                    await asyncio.wait_for(self._next_ready(ready), self.check_every)
                except TimeoutError:
                    pass
        finally:
            self.site.bus.unsubscribe(ready)

    @staticmethod
    async def _next_ready(subscription: Any) -> None:
        while (await subscription.get()).kind != "charger.ready":
            pass

    def _note(self, charger_id: str, text: str) -> None:
        # The charger's network log: where an installer looks when a charger "does not get its certificate".
        log.info("security charger=%s: %s", charger_id, text)


@dataclass
class SecurityServices:
    """What the charger sessions and the API reach of the security extensions (Site.security)."""

    certificates: CertificateService
    logs: "LogUploads"
    firmware: "SignedFirmware"
    rotation: "SiteRotation"
    meter_keys: "MeterKeys"
    # Where chargers that came over TLS upload and download (edge/web/charger_files.py); None: no [ocpp.tls].
    https: Any = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.certificates.run())
            group.create_task(self.meter_keys.run())


def build(site: "Site", server: Any, state_path: Callable[[str], Path], ca: str | None) -> SecurityServices:
    """Wired by edge/app.py: `ca` is [ocpp.tls] ca (its key beside it, as `edgectl ca init` writes it)."""
    from edge.ocpp.firmware import SignedFirmware
    from edge.ocpp.logs_upload import LogUploads

    from edge.ocpp.rotation import SiteRotation
    from edge.ocpp.signed_values import MeterKeys

    ca_pem = Path(state_path(ca)) if ca else None
    certs = CertificateService(site, (ca_pem, ca_pem.with_suffix(".key")) if ca_pem else None,
                               seen=lambda: server.seen, connected=lambda: list(server.sessions))
    rotation = SiteRotation(site, seen=lambda: server.seen, connected=lambda c: c in server.sessions,
                            has_password=lambda c: not server.credentials.keys_for(c).open,
                            rotate_password=server.credentials.rotate, renew=certs.renew)
    meter_keys = MeterKeys(site, lambda c: getattr(site.directory.configured(c), "meter_public_key", None))
    return SecurityServices(certs, LogUploads(site, Path(state_path("uploads"))),
                            SignedFirmware(site, Path(state_path("firmware")),
                                           Path(state_path(MANUFACTURER_ROOTS))), rotation, meter_keys)
