"""Chargers' CSRs signed with the operator's CA (issue 17; docs/security.md, "Signed in the cloud").

A site whose edge has `[ocpp.tls] csr_signing = "cloud"` sends a charger's CSR up as a
`certificate.csr` status message; cloud/store/certificates.py queues it when it is stored. Here each
queued CSR is checked and settled:

* refused, with the reason, when this cloud has no CA, the CSR's hash is not the hash the site named,
  the charger is not one the site has reported (its status or sessions), or the CSR does not pass
  the edge's own check (edge.ocpp.certificates.check_csr: its signature, commonName = the charger's
  id, an RSA key of at least 2048 bits or an EC key of at least 224);
* else signed as the charger's client certificate (its id as commonName, clientAuth, never beyond
  the CA's end), with the operator's CA from CLOUD_CA_CERTIFICATE / CLOUD_CA_KEY.

Either way the answer goes down as a `certificate` push (cloud/downlink.py: not retained, sent until
the site acknowledges it, expiring after PUSH_DAYS), made in the same transaction that settles the CSR.
The key is read from its file at start (a file that cannot be used stops the start, naming it) and
never stored in the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cloud.db import Database
from cloud.db.connection import Row
from cloud.downlink import Downlink
from cloud.store import certificates as store
from contract.v1 import CertificateDocument
from edge.clock import Clock, iso
from edge.ocpp import certificates

log = logging.getLogger(__name__)

# A queued CSR waits at most this long when no wake-up came (another instance stored it).
TICK_S = 30.0
# The push of a certificate expires after this long: as long as the site waits for an answer.
PUSH_DAYS = 7
OPERATOR = "cloud (CSR signing)"


class CaError(ValueError):
    """The operator's CA cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class OperatorCa:
    certificate: bytes                  # the signing CA's certificate (PEM)
    key: bytes                          # its key (PEM)
    chain: tuple[str, ...]              # what follows the charger's certificate: the CA and intermediates, no root
    days: int


def load_operator_ca(certificate_file: str, key_file: str, days: int) -> OperatorCa:
    """The CA from its files, checked: a CA certificate whose key is the key file's."""
    texts = []
    for what, name in (("CLOUD_CA_CERTIFICATE", certificate_file), ("CLOUD_CA_KEY", key_file)):
        try:
            texts.append(Path(name).read_bytes())
        except OSError as exc:
            raise CaError(f"{what}={name}: cannot be read ({exc.strerror or exc})") from None
    cert_pem, key_pem = texts
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise CaError(f"CLOUD_CA_CERTIFICATE={certificate_file}: not PEM certificates ({str(exc)[:80]})") from None
    try:
        certificates.load_ca(cert_pem, key_pem)
    except certificates.CertificateError as exc:
        raise CaError(f"CLOUD_CA_CERTIFICATE={certificate_file}, CLOUD_CA_KEY={key_file}: {exc}") from None
    try:
        is_ca = chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CaError(f"CLOUD_CA_CERTIFICATE={certificate_file}: {chain[0].subject.rfc4514_string()[:80]} is not a CA "
                      "certificate (basicConstraints CA:TRUE)")
    # The charger holds the root (the site installs it); the issuing CA and intermediates go down with each
    # certificate, so a charger that holds only the root can build the path.
    down = tuple(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain
                 if c.subject != c.issuer)
    return OperatorCa(cert_pem, key_pem, down, days)


@dataclass(frozen=True)
class Settled:
    certificate_chain: list[str] | None = None
    serial: str | None = None
    not_after: str | None = None
    refused: str | None = None


def settle(row: Row, ca: OperatorCa | None, now: datetime) -> Settled:
    """What to answer a queued CSR. One sent again gets what it got the first time."""
    if row["status"] == "resend":
        if row["certificate"]:
            return Settled(json.loads(row["certificate"]), row["serial"], row["not_after"])
        return Settled(refused=row["error"] or "refused")
    charger_id, csr = row["charger_id"], row["csr"]
    if hashlib.sha256(csr.encode()).hexdigest() != row["csr_sha256"]:
        return Settled(refused="csr_sha256 is not the SHA-256 of the CSR sent")
    if not row["known"]:
        return Settled(refused=f"{charger_id!r} is not a charger of this site (the cloud has no status or session "
                               "from it)")
    if ca is None:
        return Settled(refused="this cloud has no CA to sign with (CLOUD_CA_CERTIFICATE and CLOUD_CA_KEY are not "
                               "set)")
    try:
        pem = certificates.sign_csr(ca.certificate, ca.key, csr.encode(), charger_id, now=now, days=ca.days)
    except certificates.CertificateError as exc:
        return Settled(refused=str(exc))
    cert = x509.load_pem_x509_certificate(pem)
    return Settled([pem.decode(), *ca.chain], format(cert.serial_number, "x"), cert.not_valid_after_utc.isoformat())


class CsrSigner:
    """Settles the queued CSRs: woken when an ingest stored one, and every TICK_S (another instance's)."""

    def __init__(self, db: Database, downlink: Downlink, ca: OperatorCa | None, clock: Clock | None = None):
        self.db = db
        self.downlink = downlink
        self.ca = ca
        self.clock = clock or Clock()
        self._wake = asyncio.Event()
        self.issued = 0
        self.refused = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.settle_queued()
            except Exception as exc:  # noqa: BLE001 - the database away: the next round tries again
                log.warning("signing queued CSRs failed (tried again in %.0f s): %s", TICK_S, exc)
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except TimeoutError:
                pass

    async def settle_queued(self) -> int:
        """-> CSRs settled by this instance."""
        done = 0
        while rows := await self.db.read(store.to_settle):
            for row in rows:
                done += await self._settle(row)
            if len(rows) < 50:
                break
        return done

    async def _settle(self, row: Row) -> int:
        now = self.clock.now()
        answer = settle(row, self.ca, now)
        document = CertificateDocument(charger_id=row["charger_id"], csr_sha256=row["csr_sha256"],
                                       certificate_chain=answer.certificate_chain, refused=answer.refused)
        push: dict[str, Any] = {
            "id": uuid.uuid4().hex, "kind": "certificate", "versioned": False, "mode": "full",
            "document": json.dumps(document.model_dump(exclude_none=True)),
            "expires_at": iso(now + timedelta(days=PUSH_DAYS)), "operator": OPERATOR}
        chain = json.dumps(answer.certificate_chain) if answer.certificate_chain else None
        created = await self.db.write(lambda conn: store.settle(
            conn, row["site"], row["csr_sha256"], error=answer.refused, certificate=chain, serial=answer.serial,
            not_after=answer.not_after, push=push, now=iso(now)))
        if created is None:
            return 0            # another instance settled it
        if answer.refused is None:
            self.issued += 1
            log.info("site %s charger %s: CSR %s signed (serial %s, until %s)", row["site"], row["charger_id"],
                     row["csr_sha256"][:12], answer.serial, answer.not_after)
        else:
            self.refused += 1
            log.warning("site %s charger %s: CSR %s refused: %s", row["site"], row["charger_id"],
                        row["csr_sha256"][:12], answer.refused)
        await self.downlink.publish(created)
        return 1
