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

An OCPP 2.0.1 station gets the same offer as 2.0.1's UpdateFirmware (the same requestId and firmware
fields: location, retrieveDateTime, signingCertificate, signature; L01) and reports with 2.0.1's
FirmwareStatusNotification, kept with the request the same way (edge/ocpp/v201/services.py).
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

from edge.journal import Store
from edge.ocpp.logs_upload import safe_name, send_either, token_hash

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult
    from edge.ocpp.site import Site

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
        request_id = await self.site.journal.write(Store.create_firmware_request, charger_id, file_name, digest,
                                                   token_hash(token), fingerprint(signer), self.site.clock.now_iso())
        result = await send_either(self.site, charger_id, "SignedUpdateFirmware", {
            "requestId": request_id,
            "firmware": {"location": base_url.rstrip("/") + DOWNLOAD_PATH + token,
                         "retrieveDateTime": retrieve_at or self.site.clock.now_iso(),
                         "signingCertificate": signing_certificate.decode(), "signature": signature}},
            actor=actor, reason=reason)
        return request_id, result, None

    async def status(self, charger_id: str, request_id: int | None, status: str) -> None:
        known = await self.site.journal.write(Store.firmware_request_status, charger_id, request_id, status,
                                              self.site.clock.now_iso())
        log.log(logging.WARNING if status in FAILED else logging.INFO, "signed firmware charger=%s request=%s "
                "status=%s%s", charger_id, request_id, status, "" if known or request_id is None else " (unknown)")

    async def download(self, token: str) -> Path | None:
        name = await self.site.journal.write(Store.firmware_download, token_hash(token))
        return None if name is None else self.directory / name
