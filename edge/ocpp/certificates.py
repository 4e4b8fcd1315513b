"""The site's certificates (OCPP 1.6 security whitepaper, profiles 2 and 3), made with `cryptography`.

A site CA (kept on the edge, its key never leaves the state directory) signs the edge's
server certificate and the chargers' client certificates. Keys are ECDSA P-256 by default
(the whitepaper's TLS_ECDHE_ECDSA suites); `rsa=True` makes 2048-bit RSA for chargers that
only speak the TLS_RSA suites. The whitepaper asks of a charger's certificate that its
subject's commonName is the charge point id (the edge checks it at every connection), and
of the server's that its commonName is the name chargers connect to.

Pure functions over PEM bytes; the files are written by edgectl (edge/security_cli.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa as rsa_keys
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 10 * 365
SERVER_DAYS = 2 * 365
CHARGER_DAYS = 2 * 365
# The whitepaper: RSA keys at least 2048 bits, EC keys at least 224.
RSA_BITS = 2048


class CertificateError(ValueError):
    """A certificate, key or CSR that cannot be used; the message says why."""


@dataclass(frozen=True)
class Issued:
    certificate: bytes      # PEM
    key: bytes | None       # PEM (unencrypted: the file's mode protects it), None for a signed CSR


def new_key(rsa: bool = False) -> Any:
    return rsa_keys.generate_private_key(65537, RSA_BITS) if rsa else ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def make_ca(name: str, *, now: datetime, days: int = CA_DAYS, rsa: bool = False) -> Issued:
    """A self-signed site CA that may sign end certificates only (path length 0)."""
    key = new_key(rsa)
    subject = _name(name, "site CA")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def load_ca(cert_pem: bytes, key_pem_bytes: bytes) -> tuple[x509.Certificate, Any]:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem_bytes, password=None)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate and key: {exc}") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise CertificateError("the CA key does not belong to the CA certificate")
    return cert, key


def _end_entity(ca_cert: x509.Certificate, ca_key: Any, subject: x509.Name, public_key: Any, *, now: datetime,
                days: int, usage: list, names: list[x509.GeneralName]) -> bytes:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               # Never beyond the CA: a chain that outlives its root fails at the charger on that day.
               .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def make_server_certificate(ca_cert_pem: bytes, ca_key_pem: bytes, names: list[str], *, now: datetime,
                            days: int = SERVER_DAYS, rsa: bool = False) -> Issued:
    """The edge's server certificate: commonName the first name (the whitepaper's FQDN), and every name
    and address in subjectAltName (what TLS clients check)."""
    if not names:
        raise CertificateError("give at least one name or address chargers reach the edge by")
    ca_cert, ca_key = load_ca(ca_cert_pem, ca_key_pem)
    key = new_key(rsa)
    pem = _end_entity(ca_cert, ca_key, _name(names[0]), key.public_key(), now=now, days=days,
                      usage=[ExtendedKeyUsageOID.SERVER_AUTH], names=_alt_names(names))
    return Issued(pem, key_pem(key))


def make_charger_certificate(ca_cert_pem: bytes, ca_key_pem: bytes, charger_id: str, *, now: datetime,
                             days: int = CHARGER_DAYS, rsa: bool = False) -> Issued:
    """A client certificate and its key for a charger that cannot make a CSR itself (installed by hand)."""
    ca_cert, ca_key = load_ca(ca_cert_pem, ca_key_pem)
    key = new_key(rsa)
    pem = _end_entity(ca_cert, ca_key, _name(charger_id), key.public_key(), now=now, days=days,
                      usage=[ExtendedKeyUsageOID.CLIENT_AUTH], names=[])
    return Issued(pem, key_pem(key))


def check_csr(csr_pem: bytes, charger_id: str) -> x509.CertificateSigningRequest:
    """A charger's CSR that may be signed as its client certificate: PEM, signed by its own key, asking for
    no commonName but the charger's id, its key at least the whitepaper's size. Raises CertificateError
    saying what is wrong. The edge checks this before it signs or forwards a CSR, the cloud before it signs."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate signing request: {str(exc)[:80]}") from None
    if not csr.is_signature_valid:
        raise CertificateError("the CSR's signature does not match its key")
    asked = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if asked and asked[0] != charger_id:
        raise CertificateError(f"the CSR asks for commonName {str(asked[0])[:48]!r}, not {charger_id!r}")
    public = csr.public_key()
    if isinstance(public, rsa_keys.RSAPublicKey) and public.key_size < RSA_BITS:
        raise CertificateError(f"an RSA key of {public.key_size} bits; at least {RSA_BITS} are needed")
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size < 224:
        raise CertificateError(f"an EC key of {public.curve.key_size} bits; at least 224 are needed")
    if not isinstance(public, (rsa_keys.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise CertificateError(f"a {type(public).__name__} key; the whitepaper's chargers use RSA or EC keys")
    return csr


def sign_csr(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, charger_id: str, *, now: datetime,
             days: int = CHARGER_DAYS) -> bytes:
    """SignCertificate: the charger's CSR signed as its client certificate. Only its key is taken from the
    CSR; the subject is the charger's id whatever the CSR asks for (a CSR asking for another id is refused)."""
    public = check_csr(csr_pem, charger_id).public_key()
    ca_cert, ca_key = load_ca(ca_cert_pem, ca_key_pem)
    return _end_entity(ca_cert, ca_key, _name(charger_id), public, now=now, days=days,
                       usage=[ExtendedKeyUsageOID.CLIENT_AUTH], names=[])


def certificate_for_csr(chain_pem: bytes, csr_pem: bytes, charger_id: str) -> x509.Certificate:
    """The first certificate of `chain_pem` if it is the charger's certificate for this CSR (its key, its id
    as commonName); raises CertificateError saying what differs. What the edge checks of a certificate the
    cloud signed before it hands it to the charger."""
    try:
        cert = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError as exc:
        raise CertificateError(f"not PEM certificates: {str(exc)[:80]}") from None
    csr = x509.load_pem_x509_csr(csr_pem)
    if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
            != csr.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateError("the certificate is not for the CSR's key")
    if common_name(cert) != charger_id:
        raise CertificateError(f"the certificate names {str(common_name(cert))[:48]!r}, not {charger_id!r}")
    return cert


def make_csr(key: Any, common_name: str) -> bytes:
    """What a charger sends in SignCertificate (the simulator and the tests use it)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def check_firmware_signer(signing_pem: bytes, roots_pem: bytes, *, now: datetime) -> x509.Certificate:
    """A firmware signing certificate the edge may hand a charger (SignedUpdateFirmware, use case L01): made
    for code signing, within its dates, and chaining to one of the manufacturer's roots (`roots_pem`: one or
    more PEM certificates), as the charger will check it against the root it holds. `signing_pem` may carry
    intermediates after the signing certificate. Returns the signing certificate; raises CertificateError
    saying what is wrong."""
    from cryptography.x509 import verification

    try:
        chain = x509.load_pem_x509_certificates(signing_pem)
    except ValueError as exc:
        raise CertificateError(f"the signing certificate is not PEM: {str(exc)[:80]}") from None
    try:
        roots = x509.load_pem_x509_certificates(roots_pem)
    except ValueError as exc:
        raise CertificateError(f"the manufacturer root file is not PEM certificates: {str(exc)[:80]}") from None
    signer = chain[0]
    who = f"the signing certificate ({signer.subject.rfc4514_string()[:80]})"
    if now < signer.not_valid_before_utc:
        raise CertificateError(f"{who} is not valid before {signer.not_valid_before_utc.isoformat()}")
    if now > signer.not_valid_after_utc:
        raise CertificateError(f"{who} expired on {signer.not_valid_after_utc.isoformat()}")
    try:
        usage = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError(f"{who} has no extended key usage: it must name codeSigning") from None
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        named = ", ".join(getattr(u, "_name", None) or u.dotted_string for u in usage) or "nothing"
        raise CertificateError(f"{who} is not for code signing (its extended key usage: {named})")
    # Chain building, signatures, the CAs' constraints and dates: the library's path validation. Its end-entity
    # policy is a TLS client's (clientAuth): relaxed to any extension, codeSigning was checked above.
    verifier = (verification.PolicyBuilder().store(verification.Store(roots)).time(now)
                .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=verification.ExtensionPolicy.permit_all())
                .build_client_verifier())
    try:
        verifier.verify(signer, chain[1:])
    except verification.VerificationError as exc:
        raise CertificateError(f"{who} does not chain to the manufacturer root "
                               f"({', '.join(r.subject.rfc4514_string()[:60] for r in roots[:3])}): "
                               f"{str(exc)[:160]}") from None
    return signer


def make_firmware_signer(ca_cert_pem: bytes, ca_key_pem: bytes, name: str, *, now: datetime,
                         days: int = SERVER_DAYS) -> Issued:
    """A manufacturer's firmware signing certificate under its root (the demo, `edgectl` examples, tests)."""
    ca_cert, ca_key = load_ca(ca_cert_pem, ca_key_pem)
    key = new_key()
    cert = _end_entity(ca_cert, ca_key, _name(name), key.public_key(), now=now, days=days,
                       usage=[ExtendedKeyUsageOID.CODE_SIGNING], names=[])
    return Issued(cert, key_pem(key))


def describe(pem: bytes, *, now: datetime | None = None) -> dict[str, Any]:
    """A certificate as an installer reads it."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {str(exc)[:80]}") from None
    names: list[str] = []
    try:
        names = [str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    except x509.ExtensionNotFound:
        pass
    view = {
        "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
        "common_name": common_name(cert), "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(), "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": fingerprint(cert), "alt_names": names, "key": _key_kind(cert.public_key()),
    }
    if now is not None:
        view["days_left"] = (cert.not_valid_after_utc - now).days
    return view


def common_name(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _key_kind(key: Any) -> str:
    if isinstance(key, rsa_keys.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
