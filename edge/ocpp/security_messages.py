"""The OCPP 1.6 security whitepaper's (edition 3) certificate messages, central-system side.

- SignCertificate (use case A02/A03): the charger sends a CSR; the edge signs it with the site CA
  (certificates.sign_csr: the subject is always the charge point id, the key at least the whitepaper's
  size) while answering, and sends CertificateSigned from a task once the answer is on the wire (the ocpp
  library awaits @on handlers inline: a call() from one would wait for an answer nobody reads). What the CA
  signed is kept in issued_certificates with the charger's CertificateSigned answer.
- Signed in the cloud ([ocpp.tls] csr_signing = "cloud"): the CSR is checked as above, answered Accepted,
  kept in the journal (csr_forwards) and sent up once through the outbox (certificate.csr); the cloud's
  `certificate` push (edge/uplink/downlink.py) is checked against the CSR's key and id, kept, and sent as
  CertificateSigned when the charger is ready (now, or at its next connection, also after a restart); its
  answer is kept and sent up (certificate.answer). A CSR the cloud does not answer within CSR_WAIT expires.
- Renewal before expiry (OCA TC_074): the edge asks a charger whose client certificate (as seen at its last
  profile 3 connection) ends within `renew_days` for a new CSR with ExtendedTriggerMessage
  (SignChargePointCertificate), at most once a day per charger, checked hourly and at each connection.
- InstallCertificate, DeleteCertificate, GetInstalledCertificateIds and ExtendedTriggerMessage are plain
  commands (edge/ocpp/commands.py; `edgectl security ...` builds their parameters).
- OCPP 2.0.1 stations (block A): the same decisions; what goes on the wire is worded by the station's
  version (edge/ocpp/security_words.py, edge/ocpp/v201/security.py): a SignCertificate's certificateType
  is kept with the CSR (also in csr_forwards, across a restart) and named in the CertificateSigned.

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

from contract.v1 import CertificateDocument
from edge.clock import iso, parse_iso
from edge.events import Event
from edge.journal.store import Store
from edge.ocpp import certificates
from edge.ocpp.security_words import send as send_worded, words_for

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult
    from edge.ocpp.firmware import SignedFirmware
    from edge.ocpp.logs_upload import LogUploads
    from edge.ocpp.rotation import SiteRotation
    from edge.ocpp.security_state import Seen
    from edge.ocpp.site import Site
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
# A CSR sent to the cloud that has no answer after this long is given up (logged); the daily renewal asks the
# charger for a new one if its certificate still ends soon. The cloud's push of a certificate lasts as long.
CSR_WAIT = timedelta(days=7)
# Outcomes of a CertificateSigned that say the charger did not get it: it goes again when the charger is ready.
NOT_DELIVERED = ("not-connected", "timeout")


@dataclass(frozen=True)
class Signed:
    charger_id: str
    certificate: bytes      # PEM
    serial: str
    not_after: str
    csr_sha256: str | None = None       # signed in the cloud: the CSR it answers (csr_forwards)
    certificate_type: str | None = None     # 2.0.1: what the CSR was for (ChargingStationCertificate, V2GCertificate)


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


def answer_of(result: "CommandResult") -> str:
    """What a charger said to CertificateSigned, as kept: its status, or the outcome when it said nothing."""
    if isinstance(result.response, dict):
        return str(result.response.get("status", result.outcome))
    return f"{result.outcome}: {str(result.response)[:200]}"


def signed_of(row: dict[str, Any]) -> Signed:
    """A certificate kept in csr_forwards, as CertificateSigned sends it."""
    return Signed(row["charger_id"], row["certificate"].encode(), row["serial"], row["not_after"], row["csr_sha256"],
                  row.get("certificate_type"))


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


# -- the shell ---------------------------------------------------------------------------

class CertificateService:
    """Signs chargers' CSRs with the site CA and renews their certificates before they end."""

    def __init__(self, site: "Site", ca: tuple[Path, Path] | None, *, seen: Callable[[], "dict[str, Seen]"],
                 connected: Callable[[], list[str]], renew_days: int = RENEW_DAYS,
                 check_every: float = RENEW_CHECK_EVERY, csr_signing: str = "site"):
        self.site = site
        self.ca = ca                # (certificate, key) of the site CA; None: no [ocpp.tls], nothing is signed
        self._seen, self._connected = seen, connected
        self.renew_days, self.check_every = renew_days, check_every
        self._pending: dict[str, Signed] = {}       # SignCertificate's unique id -> what to send after the answer
        self._asked: dict[str, datetime] = {}       # charger -> when it was last asked for a CSR
        self.signed_count = 0
        # "cloud": CSRs go up to be signed with the operator's CA; wake_uplink (set by attach_uplink) tells the
        # outbox there is something to send. None: the uplink is off, and nothing can reach the cloud.
        self.csr_signing = csr_signing
        self._wake_uplink: Callable[[str], None] | None = None
        self._delivering: dict[str, asyncio.Task] = {}      # charger -> its CertificateSigned under way

    def attach_uplink(self, wake: Callable[[str], None]) -> None:
        """The uplink is on (edge/app.py): CSRs can go to the cloud, certificates come back (edge/uplink)."""
        self._wake_uplink = wake

    async def sign_certificate(self, charger_id: str, csr: str, unique_id: str, *,
                               certificate_type: str | None = None) -> str:
        """SignCertificate's answer. Accepted: the certificate is signed and recorded, and goes out as
        CertificateSigned after the answer (send_pending); or, signed in the cloud, the CSR is on its way
        there. Rejected: why is logged and in the network log. `certificate_type`: 2.0.1's (1.6 has none),
        named again in the CertificateSigned."""
        if self.csr_signing == "cloud":
            return await self._forward(charger_id, csr, unique_id, certificate_type)
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
        signed = Signed(charger_id, pem, format(cert.serial_number, "x"), cert.not_valid_after_utc.isoformat(),
                        certificate_type=certificate_type)
        await self.site.journal.write(Store.record_issued_certificate, signed.serial, charger_id,
                                      certificates.fingerprint(cert), signed.not_after, self.site.clock.now_iso())
        self._pending[unique_id] = signed
        self.signed_count += 1
        log.info("SignCertificate charger=%s: signed serial=%s until %s", charger_id, signed.serial, signed.not_after)
        return "Accepted"

    def take_pending(self, unique_id: str) -> Signed | None:
        return self._pending.pop(unique_id, None)

    async def send_signed(self, signed: Signed) -> "CommandResult":
        """CertificateSigned with the new certificate (the signing CA is the chain's root: chargers hold it).
        One the cloud signed that did not reach the charger stays to be sent when it is next ready; its
        charger's answer is sent up."""
        assert self.site.commands is not None
        charger_id = signed.charger_id
        signer = "the site CA" if signed.csr_sha256 is None else "the operator's CA (in the cloud)"
        words = words_for(self.site, charger_id)
        result = await send_worded(self.site, charger_id,
                                   words.certificate_signed(signed.certificate.decode(), signed.certificate_type),
                                   actor="edge", reason=f"SignCertificate: {signer} signed serial {signed.serial}",
                                   words=words)
        answer = answer_of(result)
        if signed.csr_sha256 is None:
            await self.site.journal.write(Store.certificate_answer, signed.serial, answer)
        elif result.outcome in NOT_DELIVERED:
            log.info("CertificateSigned charger=%s: not delivered (%s); sent when it is next ready", charger_id,
                     result.outcome)
            return result
        else:
            await self.site.journal.write(Store.csr_answered, charger_id, signed.csr_sha256, signed.serial, answer,
                                          self.site.clock.now_iso())
            if self._wake_uplink is not None:
                self._wake_uplink("status")
            if answer != "Accepted":
                log.warning("CertificateSigned charger=%s: serial %s not accepted: %s", charger_id, signed.serial,
                            answer)
                self._note(charger_id, f"CertificateSigned (serial {signed.serial}) not accepted: {answer}")
        self.site.bus.publish(Event("security.certificate_signed", signed.charger_id, self.site.clock.now_iso(),
                                    {"serial": signed.serial, "not_after": signed.not_after, "answer": answer}))
        return result

    # -- signed in the cloud -----------------------------------------------------------------

    async def _forward(self, charger_id: str, csr: str, unique_id: str, certificate_type: str | None) -> str:
        """SignCertificate with csr_signing = "cloud": the CSR checked here (the charger hears at once what is
        wrong), then kept and put in the outbox in one commit, before the charger is answered Accepted."""
        try:
            if self._wake_uplink is None:
                raise certificates.CertificateError('[ocpp.tls] csr_signing is "cloud" but [uplink] is off: '
                                                    "nothing reaches the cloud to sign it")
            certificates.check_csr(csr.encode(), charger_id)
        except certificates.CertificateError as exc:
            log.warning("SignCertificate refused charger=%s: %s", charger_id, exc)
            self._note(charger_id, f"SignCertificate rejected: {exc}")
            return "Rejected"
        digest = hashlib.sha256(csr.encode()).hexdigest()
        known = await self.site.journal.write(Store.forward_csr, charger_id, csr, digest, self.site.clock.now_iso(),
                                              certificate_type)
        if known is None:
            self._wake_uplink("status")
            log.info("SignCertificate charger=%s: CSR %s sent to the cloud to sign", charger_id, digest[:12])
        elif known["status"] == "refused":
            log.warning("SignCertificate refused charger=%s: the cloud refused this CSR before: %s", charger_id,
                        known["error"])
            self._note(charger_id, f"SignCertificate rejected: the cloud refused this CSR: {known['error']}")
            return "Rejected"
        elif known["certificate"]:
            # Asked again for a CSR whose certificate is here: it goes out again after this answer.
            self._pending[unique_id] = signed_of(known)
        else:
            log.info("SignCertificate charger=%s: CSR %s is with the cloud already", charger_id, digest[:12])
        return "Accepted"

    async def received(self, push_id: str, document: CertificateDocument) -> tuple[str, str | None]:
        """The cloud's answer to a CSR (a `certificate` push): -> the ack's status and error. done: kept (a
        certificate goes to the charger when it is ready; a refusal is logged); ignored: the CSR is no longer
        in play (superseded, expired); rejected: no such CSR here, or a certificate that is not for it."""
        charger_id, digest = document.charger_id, document.csr_sha256
        row = await self.site.journal.read(Store.csr_forward, charger_id, digest)
        if row is None:
            return "rejected", f"no CSR {digest[:12]}... of charger {charger_id!r} was sent from this site"
        if row["push_id"] == push_id and row["status"] in ("signed", "sent", "refused"):
            return "done", None             # the same push again: taken already
        if row["status"] != "waiting":
            why = f"CSR {digest[:12]}... of {charger_id} is {row['status']}" + (f" ({row['error']})" if row["error"]
                                                                                  else "")
            log.warning("certificate from the cloud for charger=%s ignored: %s", charger_id, why)
            return "ignored", why
        now = self.site.clock.now_iso()
        if document.refused is not None:
            await self.site.journal.write(Store.csr_closed, charger_id, digest, "refused", document.refused, now,
                                          push_id)
            log.warning("SignCertificate charger=%s: the cloud refused to sign CSR %s: %s", charger_id, digest[:12],
                        document.refused)
            self._note(charger_id, f"the cloud refused to sign its CSR: {document.refused}")
            return "done", None
        chain = "".join(pem if pem.endswith("\n") else pem + "\n" for pem in document.certificate_chain or [])
        try:
            if len(chain) > CHAIN_MAX_CHARS:
                raise certificates.CertificateError(f"a chain of {len(chain)} characters; CertificateSigned takes "
                                                    f"{CHAIN_MAX_CHARS}")
            cert = certificates.certificate_for_csr(chain.encode(), row["csr"].encode(), charger_id)
        except certificates.CertificateError as exc:
            why = f"the cloud's certificate does not fit CSR {digest[:12]}...: {exc}"
            await self.site.journal.write(Store.csr_closed, charger_id, digest, "refused", why, now, push_id)
            log.error("SignCertificate charger=%s: %s", charger_id, why)
            return "rejected", why
        serial = format(cert.serial_number, "x")
        await self.site.journal.write(Store.csr_signed, charger_id, digest, chain=chain, serial=serial,
                                      not_after=cert.not_valid_after_utc.isoformat(),
                                      fingerprint=certificates.fingerprint(cert), push_id=push_id, at=now)
        log.info("SignCertificate charger=%s: the cloud signed CSR %s (serial %s); %s", charger_id, digest[:12],
                 serial, "sending it" if charger_id in self._connected() else "sent when the charger is ready")
        if charger_id in self._connected():
            self.deliver_soon(charger_id)
        return "done", None

    def deliver_soon(self, charger_id: str) -> None:
        """Certificates here for this charger go out (one run per charger at a time)."""
        running = self._delivering.get(charger_id)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self.deliver(charger_id), name=f"certificate-signed {charger_id}")
        self._delivering[charger_id] = task
        task.add_done_callback(lambda t: self._delivering.pop(charger_id, None) if
                               self._delivering.get(charger_id) is t else None)

    async def deliver(self, charger_id: str) -> None:
        """CertificateSigned for each certificate the cloud signed that this charger has not had; the answer
        kept and sent up. Not reached (offline, no answer): it stays, and goes when the charger is next ready."""
        for row in await self.site.journal.read(Store.csrs_to_send, charger_id):
            if (await self.send_signed(signed_of(row))).outcome in NOT_DELIVERED:
                return

    async def expire_waiting(self) -> list[dict[str, Any]]:
        """CSRs the cloud has not answered within CSR_WAIT are given up, loudly; -> those."""
        now = self.site.clock.now()
        rows = await self.site.journal.read(Store.csrs_waiting_since, iso(now - CSR_WAIT))
        for row in rows:
            why = (f"no answer from the cloud within {CSR_WAIT.days} days (asked {row['requested_at']}); the charger "
                   "is asked for a new CSR when its certificate is due for renewal")
            await self.site.journal.write(Store.csr_closed, row["charger_id"], row["csr_sha256"], "expired", why,
                                          iso(now))
            log.warning("SignCertificate charger=%s: CSR %s expired: %s", row["charger_id"], row["csr_sha256"][:12],
                        why)
            self._note(row["charger_id"], f"its CSR expired: {why}")
        return rows

    async def renew(self, charger_id: str, *, actor: str, reason: str) -> "CommandResult":
        """Ask the charger for a new CSR (it answers with SignCertificate, handled above)."""
        assert self.site.commands is not None
        self._asked[charger_id] = self.site.clock.now()
        words = words_for(self.site, charger_id)
        return await send_worded(self.site, charger_id, words.csr_request(None), actor=actor, reason=reason,
                                 words=words)

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
        """Hourly, and whenever a charger is ready on a new connection (its certificate may be the old one;
        a certificate the cloud signed may wait for it)."""
        ready = self.site.bus.subscribe(maxsize=1000)
        try:
            while True:
                await self.renew_due()
                try:
                    self.deliver_soon(await asyncio.wait_for(self._next_ready(ready), self.check_every))
                except TimeoutError:
                    await self.expire_waiting()
                    for row in await self.site.journal.read(Store.csrs_to_send):
                        if row["charger_id"] in self._connected():
                            self.deliver_soon(row["charger_id"])
        finally:
            self.site.bus.unsubscribe(ready)
            for task in list(self._delivering.values()):
                task.cancel()

    @staticmethod
    async def _next_ready(subscription: Any) -> str:
        while (event := await subscription.get()).kind != "charger.ready":
            pass
        return event.charger_id

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


def build(site: "Site", server: Any, state_path: Callable[[str], Path], ca: str | None,
          csr_signing: str = "site") -> SecurityServices:
    """Wired by edge/app.py: `ca` is [ocpp.tls] ca (its key beside it, as `edgectl ca init` writes it)."""
    from edge.ocpp.firmware import SignedFirmware
    from edge.ocpp.logs_upload import LogUploads

    from edge.ocpp.rotation import SiteRotation
    from edge.ocpp.signed_values import MeterKeys

    ca_pem = Path(state_path(ca)) if ca else None
    certs = CertificateService(site, (ca_pem, ca_pem.with_suffix(".key")) if ca_pem else None,
                               seen=lambda: server.seen, connected=lambda: list(server.sessions),
                               csr_signing=csr_signing)
    rotation = SiteRotation(site, seen=lambda: server.seen, connected=lambda c: c in server.sessions,
                            has_password=lambda c: not server.credentials.keys_for(c).open,
                            rotate_password=server.credentials.rotate, renew=certs.renew)
    meter_keys = MeterKeys(site, lambda c: getattr(site.directory.configured(c), "meter_public_key", None))
    return SecurityServices(certs, LogUploads(site, Path(state_path("uploads"))),
                            SignedFirmware(site, Path(state_path("firmware")),
                                           Path(state_path(MANUFACTURER_ROOTS))), rotation, meter_keys)
