"""The simulated charger's side of the OCPP 1.6 security whitepaper's messages.

- ExtendedTriggerMessage: SignChargePointCertificate makes a new P-256 key and CSR (commonName: its id)
  and sends SignCertificate; the other messages as TriggerMessage.
- CertificateSigned: the certificate must carry the key of the pending CSR and name this charger; then
  it becomes the client certificate of the next TLS connection, and the charger reconnects with it
  (what OCA TC_074 expects).
- InstallCertificate, DeleteCertificate, GetInstalledCertificateIds over its own CA store.
- GetLog: LogStatusNotification Uploading, an HTTP PUT of its log to remoteLocation, Uploaded (or
  UploadFailure).
- SignedUpdateFirmware: downloads the file, checks the signature with the signing certificate
  (SignatureVerified or InvalidSignature), then Installing and Installed.

As in simulator.handlers, every @on answers without awaiting a call; follow-ups run after the answer.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

if TYPE_CHECKING:
    import ssl

CERTIFICATE_TYPES = ("CentralSystemRootCertificate", "ManufacturerRootCertificate")


@dataclass
class SecurityState:
    installed: dict[str, list[bytes]] = field(default_factory=lambda: {t: [] for t in CERTIFICATE_TYPES})
    pending_key: Any = None                 # the key of the CSR sent last
    certificate: bytes | None = None        # the client certificate the central system signed last
    log_text: str = "simulated security log\n"
    files: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sim-tls-")))
    # Fault knob: sign every firmware as valid without checking (a charger a test must catch).
    trust_any_firmware: bool = False


def hash_data(pem: bytes) -> dict[str, str]:
    cert = x509.load_pem_x509_certificate(pem)
    key = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"hash_algorithm": "SHA256", "issuer_name_hash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": hashlib.sha256(key).hexdigest(), "serial_number": format(cert.serial_number, "x")}


def _same(a: dict, b: dict) -> bool:
    norm = {k.replace("_", "").lower(): str(v).lower() for k, v in a.items()}
    return norm == {k.replace("_", "").lower(): str(v).lower() for k, v in b.items()}


def install_certificate(state: SecurityState, certificate_type: str, certificate: str) -> str:
    """InstallCertificate into the CA store (either OCPP version's types): Accepted, or Rejected if not PEM."""
    try:
        x509.load_pem_x509_certificate(certificate.encode())
    except ValueError:
        return "Rejected"
    store = state.installed.setdefault(certificate_type, [])
    if certificate.encode() not in store:
        store.append(certificate.encode())
    return "Accepted"


def delete_certificate(state: SecurityState, certificate_hash_data: dict) -> str:
    """DeleteCertificate by its CertificateHashData (either case style): Accepted, or NotFound."""
    status = "NotFound"
    for store in state.installed.values():
        for pem in list(store):
            if _same(hash_data(pem), certificate_hash_data):
                store.remove(pem)
                status = "Accepted"
    return status


def firmware_signature_ok(firmware: bytes, signing_certificate: str, signature: str) -> bool:
    try:
        key = x509.load_pem_x509_certificate(signing_certificate.encode()).public_key()
        raw = base64.b64decode(signature)
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, firmware, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, firmware, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def make_csr(common_name: str, organization: str | None = None) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new P-256 key and the PEM CSR for it, naming the charger (both OCPP versions send this)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def check_signed(certificate_chain: str, pending_key: Any, common_name: str) -> str:
    """Why a CertificateSigned's certificate cannot be used ("" when it can): the CSR's key, this charger's name."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_chain.encode())
    except ValueError as exc:
        return str(exc)[:80]
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if pending_key is None:
        return "no CSR pending"
    if cert.public_key().public_numbers() != pending_key.public_key().public_numbers():
        return "not the key of the CSR"
    if names != [common_name]:
        return f"commonName {names}"
    return ""


def adopt_certificate(state: SecurityState, certificate_chain: str, tls: Any) -> bool:
    """Keep a checked certificate and its key; True when `tls` will present it from the next connection."""
    state.certificate = certificate_chain.encode()
    cert_file, key_file = state.files / "client.pem", state.files / "client.key"
    cert_file.write_bytes(state.certificate)
    key_file.write_bytes(state.pending_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    state.pending_key = None
    if tls is None:
        return False
    tls.load_cert_chain(str(cert_file), str(key_file))
    return True


async def put_log(sim: Any, location: str, file_name: str) -> str:
    """A charger's log PUT to the central system's remoteLocation (either OCPP version): Uploaded or UploadFailure."""
    try:
        async with aiohttp.ClientSession() as http:
            async with http.put(location, data=sim.security.log_text.encode(),
                                headers={"X-File-Name": file_name}, ssl=sim.tls or True) as answer:
                return "Uploaded" if answer.status < 300 else "UploadFailure"
    except aiohttp.ClientError:
        return "UploadFailure"


async def install_firmware(sim: Any, firmware: dict, report: Callable[[str], Awaitable[None]]) -> None:
    """A signed firmware (location, signing_certificate, signature; 1.6's SignedUpdateFirmware and 2.0.1's
    UpdateFirmware alike) downloaded, its signature checked and installed, each step reported."""
    await report("Downloading")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(firmware["location"], ssl=sim.tls or True) as answer:
                body = await answer.read() if answer.status == 200 else None
    except aiohttp.ClientError:
        body = None
    if body is None:
        await report("DownloadFailed")
        return
    await report("Downloaded")
    certificate, signature = firmware.get("signing_certificate"), firmware.get("signature")
    if not (sim.security.trust_any_firmware or (certificate and signature and firmware_signature_ok(
            body, certificate, signature))):
        await report("InvalidSignature")
        return
    await report("SignatureVerified")
    await report("Installing")
    sim.firmware_version = "signed-" + hashlib.sha256(body).hexdigest()[:8]
    await report("Installed")


class Secured(Protocol):
    """What the security handlers use of the 1.6 charge point (charge_point.py, which imports this module)."""

    id: str
    tls: ssl.SSLContext | None
    security: SecurityState

    def emit(self, name: str, **data: Any) -> None: ...


class SecurityHandlers(ChargePoint):
    sim: Secured

    # ---- certificates ------------------------------------------------------------------

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str, call_unique_id: str, connector_id: int | None = None,
                                    **_: Any) -> call_result.ExtendedTriggerMessage:
        simple = {"BootNotification", "Heartbeat", "MeterValues", "StatusNotification"}
        if requested_message == "SignChargePointCertificate":
            follow_up = self._send_csr
        elif requested_message in simple:
            follow_up = lambda: self._triggered(requested_message, connector_id)  # type: ignore  # noqa: E731
        elif requested_message == "LogStatusNotification":
            follow_up = lambda: self.send(call.LogStatusNotification(status="Idle"))  # noqa: E731
        elif requested_message == "FirmwareStatusNotification":
            follow_up = lambda: self.send(call.SignedFirmwareStatusNotification(status="Idle"))  # noqa: E731
        else:
            follow_up = None
        status = "Accepted" if follow_up else "NotImplemented"
        self._answer("ExtendedTriggerMessage", status, call_unique_id, follow_up,  # type: ignore[attr-defined]
                     requested_message=requested_message)
        return call_result.ExtendedTriggerMessage(status=status)

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _send_csr(self) -> None:
        key, csr = make_csr(self.sim.id)
        self.sim.security.pending_key = key
        result = await self.send(call.SignCertificate(csr=csr))
        self.sim.emit("sign_certificate", status=result.status)

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, call_unique_id: str,
                              **_: Any) -> call_result.CertificateSigned:
        detail = check_signed(certificate_chain, self.sim.security.pending_key, self.sim.id)
        status = "Rejected" if detail else "Accepted"
        follow_up = None
        # The next connection presents it: reconnect now, as a charger does after a new certificate.
        if not detail and adopt_certificate(self.sim.security, certificate_chain, self.sim.tls):
            follow_up = self._reconnect
        self._answer("CertificateSigned", status, call_unique_id, follow_up, detail=detail)  # type: ignore
        return call_result.CertificateSigned(status=status)

    @after(Action.certificate_signed)
    def after_certificate_signed(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _reconnect(self) -> None:
        await self.close()  # type: ignore[attr-defined]

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, call_unique_id: str,
                               **_: Any) -> call_result.InstallCertificate:
        status = install_certificate(self.sim.security, certificate_type, certificate)
        self._answer("InstallCertificate", status, call_unique_id, certificate_type=certificate_type)  # type: ignore
        return call_result.InstallCertificate(status=status)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict, call_unique_id: str,
                              **_: Any) -> call_result.DeleteCertificate:
        status = delete_certificate(self.sim.security, certificate_hash_data)
        self._answer("DeleteCertificate", status, call_unique_id)  # type: ignore[attr-defined]
        return call_result.DeleteCertificate(status=status)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, call_unique_id: str,
                                         **_: Any) -> call_result.GetInstalledCertificateIds:
        found = [hash_data(pem) for pem in self.sim.security.installed.get(certificate_type, [])]
        status = "Accepted" if found else "NotFound"
        self._answer("GetInstalledCertificateIds", status, call_unique_id)  # type: ignore[attr-defined]
        return call_result.GetInstalledCertificateIds(status=status, certificate_hash_data=found or None)

    # ---- logs and firmware ----------------------------------------------------------------

    @on(Action.get_log)
    def on_get_log(self, log: dict, log_type: str, request_id: int, call_unique_id: str,
                   **_: Any) -> call_result.GetLog:
        file_name = f"{log_type}-{self.sim.id}.log"
        location = log["remote_location"]
        self._answer("GetLog", "Accepted", call_unique_id,  # type: ignore[attr-defined]
                     lambda: self._upload_log(location, request_id, file_name), request_id=request_id)
        return call_result.GetLog(status="Accepted", filename=file_name)

    @after(Action.get_log)
    def after_get_log(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _upload_log(self, location: str, request_id: int, file_name: str) -> None:
        await self.send(call.LogStatusNotification(status="Uploading", request_id=request_id))
        status = await put_log(self.sim, location, file_name)
        self.sim.emit("log_upload", status=status, request_id=request_id)
        await self.send(call.LogStatusNotification(status=status, request_id=request_id))

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(self, request_id: int, firmware: dict, call_unique_id: str,
                                  **_: Any) -> call_result.SignedUpdateFirmware:
        self._answer("SignedUpdateFirmware", "Accepted", call_unique_id,  # type: ignore[attr-defined]
                     lambda: self._install_signed(request_id, firmware), request_id=request_id)
        return call_result.SignedUpdateFirmware(status="Accepted")

    @after(Action.signed_update_firmware)
    def after_signed_update_firmware(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _install_signed(self, request_id: int, firmware: dict) -> None:
        async def report(status: str) -> None:
            self.sim.emit("signed_firmware", status=status, request_id=request_id)
            await self.send(call.SignedFirmwareStatusNotification(status=status, request_id=request_id))
        await install_firmware(self.sim, firmware, report)
