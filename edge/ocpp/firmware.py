"""SignedUpdateFirmware and SignedFirmwareStatusNotification (OCPP 1.6 security whitepaper, use case L01;
OCA TC_080, TC_081).

The installer gives the edge a firmware file, the manufacturer's signing certificate and the signature
(Base64 of a SHA-256 signature over the file, RSA or ECDSA, as the whitepaper asks). The edge checks the
signing certificate against the manufacturer's root (the state directory's tls/manufacturer-roots.pem, or
one given with the firmware): it must chain to it, be within its dates and be for code signing, as the
charger will check it; then the signature. Both before anything reaches a charger (a firmware that does not
verify is refused with why),
keeps the file in the state directory's firmware/, and offers it to the charger at a download URL with a
token (`/api/v1/firmware/{token}`, edge/web/api/security_files.py). The charger checks the signature again
and reports each step with SignedFirmwareStatusNotification, kept with the request; InvalidSignature and
the failures are logged as warnings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edge.ocpp.logs_upload import safe_name, token_hash

if TYPE_CHECKING:
    from edge.journal import Store
    from edge.ocpp.commands import CommandResult
    from edge.ocpp.server import Site

log = logging.getLogger(__name__)

DOWNLOAD_PATH = "/api/v1/firmware/"
FAILED = {"DownloadFailed", "InstallationFailed", "InvalidSignature", "InstallVerificationFailed"}


class FirmwareError(ValueError):
    """A firmware, certificate or signature that cannot be offered; the message says why."""


def verify_signature(firmware: bytes, signing_certificate: bytes, signature_b64: str) -> x509.Certificate:
    """Checks the whitepaper's firmware signature: SHA-256 over the file, by the signing certificate's key
    (ECDSA, or RSA with PKCS#1 v1.5 or PSS). Returns the certificate; raises FirmwareError."""
    try:
        cert = x509.load_pem_x509_certificate(signing_certificate)
    except ValueError as exc:
        raise FirmwareError(f"the signing certificate is not PEM: {str(exc)[:80]}") from None
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise FirmwareError("the signature is not Base64") from None
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, firmware, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, firmware, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(signature, firmware, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
                           hashes.SHA256())
        else:
            raise FirmwareError(f"a {type(key).__name__} signing key; RSA or ECDSA expected")
    except InvalidSignature:
        raise FirmwareError("the signature does not match the firmware and the signing certificate") from None
    return cert


def sign_firmware(firmware: bytes, key: Any) -> str:
    """What a manufacturer does (tests, the demo, `edgectl security firmware --sign-with`)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return base64.b64encode(key.sign(firmware, ec.ECDSA(hashes.SHA256()))).decode()
    return base64.b64encode(key.sign(firmware, padding.PKCS1v15(), hashes.SHA256())).decode()


# -- journal (on the journal's thread) -------------------------------------------------------

def create_request(store: "Store", charger_id: str, file_name: str, sha256: str, hashed_token: str,
                   signer_sha256: str, at: str) -> int:
    return int(store.conn.execute(
        "INSERT INTO firmware_requests (charger_id, file_name, sha256, token_sha256, signer_sha256, requested_at) "
        "VALUES (?, ?, ?, ?, ?, ?)", (charger_id, file_name, sha256, hashed_token, signer_sha256, at)).lastrowid)


def set_status(store: "Store", charger_id: str, request_id: int | None, status: str, at: str) -> bool:
    if request_id is None:
        return False
    return store.conn.execute("UPDATE firmware_requests SET status = ?, status_at = ? WHERE request_id = ? "
                              "AND charger_id = ?", (status, at, request_id, charger_id)).rowcount > 0


def file_for_token(store: "Store", hashed_token: str) -> str | None:
    row = store.conn.execute("SELECT request_id, file_name FROM firmware_requests WHERE token_sha256 = ?",
                             (hashed_token,)).fetchone()
    if row is None:
        return None
    store.conn.execute("UPDATE firmware_requests SET downloads = downloads + 1 WHERE request_id = ?", (row[0],))
    return str(row[1])


def firmware_requests(store: "Store", charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, args = ("WHERE charger_id = ?", (charger_id,)) if charger_id else ("", ())
    cur = store.conn.execute(
        "SELECT request_id, charger_id, file_name, sha256, signer_sha256, requested_at, status, status_at, "
        f"downloads FROM firmware_requests {where} ORDER BY request_id DESC LIMIT ?", (*args, limit))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]


# -- the shell -------------------------------------------------------------------------------

class SignedFirmware:
    def __init__(self, site: "Site", directory: Path, roots: Path):
        self.site = site
        self.directory = directory
        self.roots = roots          # the manufacturers' roots signing certificates must chain to (PEM)

    def _roots(self, given: bytes | None) -> bytes:
        if given is not None:
            return given
        try:
            return self.roots.read_bytes()
        except FileNotFoundError:
            raise FirmwareError(f"no manufacturer root to check the signing certificate against: put the "
                                f"manufacturer's root CA (PEM) in {self.roots}, or give one with this firmware "
                                "(--manufacturer-root)") from None

    async def offer(self, charger_id: str, firmware: bytes, name: str, signing_certificate: bytes, signature: str,
                    base_url: str, *, retrieve_at: str | None = None, actor: str, reason: str,
                    manufacturer_roots: bytes | None = None
                    ) -> tuple[int | None, "CommandResult | None", str | None]:
        """-> (requestId, the charger's answer, None), or (None, None, why) when the signing certificate does not
        chain to a manufacturer root (`manufacturer_roots`, else the roots file), has expired or is not for code
        signing, or the signature does not check (nothing is stored or sent then)."""
        from edge.ocpp.certificates import CertificateError, check_firmware_signer
        try:
            check_firmware_signer(signing_certificate, self._roots(manufacturer_roots), now=self.site.clock.now())
            signer = verify_signature(firmware, signing_certificate, signature)
        except (FirmwareError, CertificateError) as exc:
            log.warning("firmware for charger=%s refused: %s", charger_id, exc)
            return None, None, str(exc)
        assert self.site.commands is not None
        digest = hashlib.sha256(firmware).hexdigest()
        self.directory.mkdir(parents=True, exist_ok=True)
        file_name = f"{digest[:16]}-{safe_name(name)}"
        target = self.directory / file_name
        if not target.exists():
            partial = target.with_name(file_name + ".part")
            partial.write_bytes(firmware)
            os.replace(partial, target)
        token = secrets.token_urlsafe(32)
        from edge.ocpp.certificates import fingerprint
        request_id = await self.site.journal.write(create_request, charger_id, file_name, digest, token_hash(token),
                                                   fingerprint(signer), self.site.clock.now_iso())
        result = await self.site.commands.send(charger_id, "SignedUpdateFirmware", {
            "requestId": request_id,
            "firmware": {"location": base_url.rstrip("/") + DOWNLOAD_PATH + token,
                         "retrieveDateTime": retrieve_at or self.site.clock.now_iso(),
                         "signingCertificate": signing_certificate.decode(), "signature": signature}},
            actor=actor, reason=reason)
        return request_id, result, None

    async def status(self, charger_id: str, request_id: int | None, status: str) -> None:
        known = await self.site.journal.write(set_status, charger_id, request_id, status, self.site.clock.now_iso())
        log.log(logging.WARNING if status in FAILED else logging.INFO, "signed firmware charger=%s request=%s "
                "status=%s%s", charger_id, request_id, status, "" if known or request_id is None else " (unknown)")

    async def download(self, token: str) -> Path | None:
        name = await self.site.journal.write(file_for_token, token_hash(token))
        return None if name is None else self.directory / name
