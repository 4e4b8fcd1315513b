"""The firmware signing certificate is checked against the manufacturer's root before SignedUpdateFirmware is
sent (whitepaper use case L01: the charger checks it against the ManufacturerRootCertificate it holds; the
edge refuses first what the charger would refuse, with why). Every certificate here is made in the test with
`cryptography`, so the product's own helpers are not what is being trusted."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.ocpp.certificates import CertificateError, check_firmware_signer
from edge.ocpp.firmware import sign_firmware
from edge.ocpp.masking import MASK
from simulator.tls import client_context
from tests.edge.conftest import api_call
from tests.edge.security.test_charger_urls import sent_request
from tests.edge.security.test_profiles import sim

NOW = datetime.now(timezone.utc)


def _cert(name: str, key, *, issuer: tuple[x509.Certificate, object] | None = None, ca: bool = False,
          usage: list | None = None, start: datetime = NOW - timedelta(days=1), days: int = 365) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def maker():
    root_key = _key()
    root = _cert("Maker root", root_key, ca=True, days=3650)
    return root, root_key


def _signer(maker, **kwargs) -> tuple[x509.Certificate, object]:
    key = _key()
    return _cert("Maker firmware signing", key, issuer=maker, **kwargs), key


def test_a_code_signing_certificate_under_the_manufacturer_root_passes(maker):
    signer, _ = _signer(maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert check_firmware_signer(_pem(signer), _pem(maker[0]), now=NOW) == signer


def test_a_chain_through_an_intermediate_passes_when_the_intermediate_is_given(maker):
    sub_key = _key()
    sub = _cert("Maker firmware CA", sub_key, issuer=maker, ca=True)
    signer, _ = _signer((sub, sub_key), usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert check_firmware_signer(_pem(signer, sub), _pem(maker[0]), now=NOW) == signer
    with pytest.raises(CertificateError, match="does not chain"):
        check_firmware_signer(_pem(signer), _pem(maker[0]), now=NOW)


def test_a_certificate_from_another_root_is_refused(maker):
    other_key = _key()
    other = _cert("Someone else's root", other_key, ca=True)
    signer, _ = _signer((other, other_key), usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    with pytest.raises(CertificateError, match="does not chain to the manufacturer root"):
        check_firmware_signer(_pem(signer), _pem(maker[0]), now=NOW)
    # Self-signed, naming itself the root: not the manufacturer's either.
    key = _key()
    selfsigned = _cert("Maker root", key, usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    with pytest.raises(CertificateError, match="does not chain"):
        check_firmware_signer(_pem(selfsigned), _pem(maker[0]), now=NOW)


def test_an_expired_or_not_yet_valid_certificate_is_refused(maker):
    expired, _ = _signer(maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING], start=NOW - timedelta(days=30), days=10)
    with pytest.raises(CertificateError, match="expired on"):
        check_firmware_signer(_pem(expired), _pem(maker[0]), now=NOW)
    future, _ = _signer(maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING], start=NOW + timedelta(days=3))
    with pytest.raises(CertificateError, match="not valid before"):
        check_firmware_signer(_pem(future), _pem(maker[0]), now=NOW)


def test_a_certificate_not_for_code_signing_is_refused(maker):
    tls_client, _ = _signer(maker, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    with pytest.raises(CertificateError, match="not for code signing .*clientAuth"):
        check_firmware_signer(_pem(tls_client), _pem(maker[0]), now=NOW)
    no_usage, _ = _signer(maker)
    with pytest.raises(CertificateError, match="no extended key usage"):
        check_firmware_signer(_pem(no_usage), _pem(maker[0]), now=NOW)


def test_files_that_are_not_certificates_say_which(maker):
    with pytest.raises(CertificateError, match="signing certificate is not PEM"):
        check_firmware_signer(b"garbage", _pem(maker[0]), now=NOW)
    signer, _ = _signer(maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    with pytest.raises(CertificateError, match="manufacturer root file is not PEM"):
        check_firmware_signer(_pem(signer), b"garbage", now=NOW)


async def _offer(edge, firmware: Path, signer: x509.Certificate, key, expect: int, **extra) -> dict:
    return await api_call(edge, "POST", "/security/chargers/CP-2/firmware", expect=expect, body={
        "path": str(firmware), "signing_certificate": _pem(signer).decode(),
        "signature": sign_firmware(firmware.read_bytes(), key), **extra})


async def test_the_edge_sends_no_firmware_whose_signer_does_not_chain_to_the_manufacturer_root(
        make_tls_edge, pki, tmp_path, maker):
    firmware = tmp_path / "fw-3.0.bin"
    firmware.write_bytes(b"firmware 3.0" * 100)
    other_key = _key()
    other = _cert("Someone else's root", other_key, ca=True)
    foreign, foreign_key = _signer((other, other_key), usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    good, good_key = _signer(maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        # No root installed yet: nothing can be checked, so nothing is sent.
        missing = await _offer(edge, firmware, good, good_key, 422)
        assert "no manufacturer root" in missing["error"] and "manufacturer-roots.pem" in missing["error"]
        (tmp_path / "tls" / "manufacturer-roots.pem").write_bytes(_pem(maker[0]))
        refused = await _offer(edge, firmware, foreign, foreign_key, 422)   # a valid signature, a wrong signer
        assert "does not chain to the manufacturer root" in refused["error"]
        assert not [e for name, e in cp.events if name == "request" and e["action"] == "SignedUpdateFirmware"]
        assert await api_call(edge, "GET", "/security/firmware?charger=CP-2") == []
        # The root given with the firmware (edgectl --manufacturer-root) is used instead of the file.
        wrong_root = await _offer(edge, firmware, good, good_key, 422, manufacturer_root=_pem(other).decode())
        assert "does not chain" in wrong_root["error"]
        sent = await _offer(edge, firmware, good, good_key, 200)
        assert sent["outcome"] == "ok", sent
        await cp.wait_event("signed_firmware", count=5)
        statuses = [e["status"] for name, e in cp.events if name == "signed_firmware"]
        assert statuses[-1] == "Installed"
        # Fetched over HTTPS (the charger came over wss://), the URL's token not kept in the actions log.
        location = (await sent_request(edge, "CP-2", "SignedUpdateFirmware"))["firmware"]["location"]
        assert location == f"https://127.0.0.1:{edge.charger_files.bound_port}/api/v1/firmware/{MASK}"


async def test_TC_081_CSMS_a_charger_that_deems_the_signature_invalid_is_heard(make_tls_edge, pki, tmp_path, maker):
    """OCA TC_081_CSMS: the central system sends a signed firmware, the charger downloads it, checks the
    signature and reports InvalidSignature; the central system answers each notification and keeps the
    outcome. An RSA-PSS signature verifies at the edge; the simulated charger only checks PKCS#1 v1.5 (as
    some chargers do), so it reports InvalidSignature, as a real charger with another view would."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    import base64

    firmware = tmp_path / "fw-4.0.bin"
    firmware.write_bytes(b"firmware 4.0" * 100)
    (tmp_path / "tls" / "manufacturer-roots.pem").write_bytes(_pem(maker[0]))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = _cert("Maker RSA signing", key, issuer=maker, usage=[ExtendedKeyUsageOID.CODE_SIGNING])
    pss = base64.b64encode(key.sign(firmware.read_bytes(), padding.PSS(padding.MGF1(hashes.SHA256()),
                                                                       padding.PSS.MAX_LENGTH),
                                    hashes.SHA256())).decode()
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        sent = await api_call(edge, "POST", "/security/chargers/CP-2/firmware", body={
            "path": str(firmware), "signing_certificate": _pem(signer).decode(), "signature": pss})
        assert sent["outcome"] == "ok", sent
        await cp.wait_event("signed_firmware", count=3)
        statuses = [e["status"] for name, e in cp.events if name == "signed_firmware"]
        assert statuses == ["Downloading", "Downloaded", "InvalidSignature"]
        # The notification is on its way once the charger reported it: until the edge has kept it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while (await api_call(edge, "GET", "/security/firmware?charger=CP-2"))[0]["status"] != "InvalidSignature":
            assert loop.time() < deadline, "InvalidSignature not kept"
            await asyncio.sleep(0.01)
