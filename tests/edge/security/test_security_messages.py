"""The security whitepaper's messages between the real edge and the simulated charger over real TLS on
loopback, named after the OCA 1.6 test cases (central system side) they correspond to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric import ec

from edge.journal import Store
from edge.ocpp import certificates, security_messages
from edge.ocpp.firmware import sign_firmware
from edge.ocpp.security_state import Seen
from simulator.tls import client_context
from tests.edge.conftest import PASSWORD, api_call, eventually, wait_for
from tests.edge.security.test_profiles import sim


def _cp3(pki, days: int = 365):
    cert, key = pki.charger("CP-3", "CP-3", days=days)
    return client_context(pki.root / "ca.pem", certificate=cert, key=key)


async def test_TC_074_certificate_renewed_by_request_of_the_central_system(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-3", tls=_cp3(pki), password=None) as cp:
        first = edge.ocpp.seen["CP-3"].cert_serial
        answer = await api_call(edge, "POST", "/security/chargers/CP-3/renew")
        assert answer["outcome"] == "ok", answer
        # SignCertificate accepted, CertificateSigned accepted, and the charger back with its new certificate.
        await cp.wait_event("sign_certificate")
        await wait_for(lambda: edge.ocpp.seen["CP-3"].cert_serial not in (None, first), what="the new certificate")
        issued = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
        assert issued[0]["serial"] == edge.ocpp.seen["CP-3"].cert_serial
        assert issued[0]["answer"] == "Accepted"
        assert edge.ocpp.seen["CP-3"].level == 3


async def test_a_certificate_that_ends_within_30_days_is_renewed_when_the_charger_connects(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-3", tls=_cp3(pki, days=10), password=None):
        first = edge.ocpp.seen["CP-3"].cert_serial
        await wait_for(lambda: edge.ocpp.seen["CP-3"].cert_serial != first, what="the renewed certificate in use")
        issued = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
        assert [row["answer"] for row in issued] == ["Accepted"]


async def test_a_CSR_for_another_charger_is_rejected(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-3", tls=_cp3(pki), password=None) as cp:
        csr = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-1").decode()
        from ocpp.v16 import call
        await cp.wait_online()
        answer = await cp.send(call.SignCertificate(csr=csr))
        assert answer.status == "Rejected"
        assert await api_call(edge, "GET", "/security/certificates") == []


async def test_TC_075_076_install_list_and_delete_a_root_certificate(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        pem = pki.ca_pem.decode()
        done = await api_call(edge, "POST", "/chargers/CP-2/commands/InstallCertificate", body={
            "params": {"certificateType": "CentralSystemRootCertificate", "certificate": pem}, "reason": "test"})
        assert done["outcome"] == "ok" and done["response"]["status"] == "Accepted"
        ids = await api_call(edge, "POST", "/chargers/CP-2/commands/GetInstalledCertificateIds", body={
            "params": {"certificateType": "CentralSystemRootCertificate"}, "reason": "test"})
        assert ids["response"]["certificateHashData"] == [security_messages.hash_data(pki.ca_pem)]
        gone = await api_call(edge, "POST", "/chargers/CP-2/commands/DeleteCertificate", body={
            "params": {"certificateHashData": security_messages.hash_data(pki.ca_pem)}, "reason": "test"})
        assert gone["response"]["status"] == "Accepted"
        assert cp.security.installed["CentralSystemRootCertificate"] == []


async def test_TC_079_get_security_log_uploaded_with_a_one_time_token(make_tls_edge, pki, tmp_path):
    import aiohttp

    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        cp.security.log_text = "line 1\nline 2\n"
        answer = await api_call(edge, "POST", "/security/chargers/CP-2/logs", body={"log_type": "SecurityLog"})
        assert answer["outcome"] == "ok" and answer["response"]["status"] == "Accepted"
        await cp.wait_event("log_upload")

        async def uploaded():
            rows = await edge.journal.read(Store.log_requests, "CP-2")
            return rows if rows and rows[0]["status"] == "Uploaded" and rows[0]["file_name"] else None
        rows = await eventually(uploaded, "the log's upload recorded")
        assert rows and rows[0]["size"] == len(cp.security.log_text)
        port = edge.api.bound_port
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {edge.api._token}"}
            async with http.get(f"http://127.0.0.1:{port}/api/v1/security/logs/{answer['request_id']}/file",
                                headers=headers) as got:
                assert got.status == 200 and await got.text() == cp.security.log_text
            # The token was spent: a second upload (or a guessed URL) is refused and lands nowhere.
            async with http.put(f"http://127.0.0.1:{port}/api/v1/uploads/nottherealtoken", data=b"x") as again:
                assert again.status == 404
        assert len(list((tmp_path / "uploads" / "CP-2").iterdir())) == 1


async def test_an_upload_over_the_size_limit_is_refused(make_tls_edge, pki, tmp_path):
    import aiohttp

    async with make_tls_edge() as edge:
        edge.ocpp.site.security.logs.max_bytes = 1000
        request_id, token = await _open_upload(edge)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{edge.api.bound_port}/api/v1/uploads/{token}"
            async with http.put(url, data=b"x" * 5000) as big:
                assert big.status == 413
            async with http.put(url, data=b"small") as ok:
                assert ok.status == 201
            async with http.put(url, data=b"again") as spent:
                assert spent.status == 404
        rows = await edge.journal.read(Store.log_requests, "CP-2")
        assert rows[0]["request_id"] == request_id and rows[0]["size"] == 5


async def _open_upload(edge):
    """A GetLog's upload URL without a charger (it is offline: the request is still recorded)."""
    import secrets

    from edge.ocpp import logs_upload
    token = secrets.token_urlsafe(16)
    now = edge.clock.now()
    request_id = await edge.journal.write(Store.create_log_request, "CP-2", "SecurityLog",
                                          logs_upload.token_hash(token), now.isoformat(),
                                          (now + timedelta(hours=1)).isoformat())
    return request_id, token


def _signer(tmp_path):
    """A manufacturer's root (installed where the edge looks for it) and a code-signing certificate under it."""
    from cryptography.hazmat.primitives import serialization
    now = certificates.utcnow()
    root = certificates.make_ca("Manufacturer root", now=now)
    (tmp_path / "tls").mkdir(exist_ok=True)
    (tmp_path / "tls" / "manufacturer-roots.pem").write_bytes(root.certificate)
    signer = certificates.make_firmware_signer(root.certificate, root.key or b"", "Firmware signer", now=now)
    return signer.certificate, serialization.load_pem_private_key(signer.key or b"", None), root


async def test_TC_080_secure_firmware_update(make_tls_edge, pki, tmp_path):
    firmware = tmp_path / "fw-2.0.bin"
    firmware.write_bytes(b"\x7fELF firmware 2.0" * 1000)
    signing_cert, signing_key, _ = _signer(tmp_path)
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        answer = await api_call(edge, "POST", "/security/chargers/CP-2/firmware", body={
            "path": str(firmware), "signing_certificate": signing_cert.decode(),
            "signature": sign_firmware(firmware.read_bytes(), signing_key)})
        assert answer["outcome"] == "ok", answer
        await cp.wait_event("signed_firmware", count=5)   # Downloading ... Installed
        statuses = [e["status"] for name, e in cp.events if name == "signed_firmware"]
        assert statuses == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
        rows = await api_call(edge, "GET", "/security/firmware?charger=CP-2")
        await wait_for(lambda: True)
        assert rows[0]["downloads"] == 1


async def test_TC_081_firmware_with_an_invalid_signature_is_not_offered(make_tls_edge, pki, tmp_path):
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"firmware")
    signing_cert, signing_key, _ = _signer(tmp_path)
    bad = sign_firmware(b"another firmware", signing_key)
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        answer = await api_call(edge, "POST", "/security/chargers/CP-2/firmware", expect=422, body={
            "path": str(firmware), "signing_certificate": signing_cert.decode(), "signature": bad})
        assert "does not match" in answer["error"]
        assert not [e for name, e in cp.events if name == "request" and e["action"] == "SignedUpdateFirmware"]


def test_renewal_is_due_within_the_window_once_a_day():
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)

    def seen(level: int, days_left: float | None) -> Seen:
        ends = None if days_left is None else (now + timedelta(days=days_left)).isoformat()
        return Seen(level, "", level, "", cert_not_after=ends)
    due = security_messages.renewal_due
    assert due(seen(3, 10), now, renew_days=30, last_asked=None)
    assert due(seen(3, -1), now, renew_days=30, last_asked=None)               # ended: still worth asking
    assert not due(seen(3, 40), now, renew_days=30, last_asked=None)
    assert not due(seen(2, 10), now, renew_days=30, last_asked=None)           # no client certificate
    assert not due(seen(3, None), now, renew_days=30, last_asked=None)
    assert not due(None, now, renew_days=30, last_asked=None)
    assert not due(seen(3, 10), now, renew_days=30, last_asked=now - timedelta(hours=2))
    assert due(seen(3, 10), now, renew_days=30, last_asked=now - timedelta(days=1))


async def test_site_wide_certificate_rotation_with_progress(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-3", tls=_cp3(pki), password=None), \
            sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")):
        first = edge.ocpp.seen["CP-3"].cert_serial
        started = await api_call(edge, "POST", "/security/rotate", body={"kinds": ["certificate"]}, expect=202)
        states = {s["charger_id"]: s["state"] for s in started["steps"]}
        assert states == {"CP-1": "skipped", "CP-2": "skipped", "CP-3": "pending"}

        async def finished():
            return (await api_call(edge, "GET", "/security/rotate"))["finished"]
        await eventually(finished, "the rotation to finish")
        state = await api_call(edge, "GET", "/security/rotate")
        assert state["counts"] == {"skipped": 2, "done": 1}, state
        await wait_for(lambda: edge.ocpp.seen["CP-3"].cert_serial != first, what="CP-3 back with its new certificate")


assert PASSWORD


async def test_edgectl_security_installs_lists_and_rotates(make_tls_edge, pki, tmp_path, capsys):
    import asyncio

    from edge.cli import main
    from tests.edge.conftest import site_toml
    from tests.edge.security.conftest import CHARGERS, TLS

    (tmp_path / "site.toml").write_text(site_toml(tmp_path, chargers=CHARGERS).replace("[api]", TLS + "[api]", 1))
    run = ["--config", str(tmp_path / "site.toml"), "--state-dir", str(tmp_path)]
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        # edgectl reads the API port from the config: point it at this edge's.
        text = (tmp_path / "site.toml").read_text().replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}")
        (tmp_path / "site.toml").write_text(text)
        assert await asyncio.to_thread(main, ["security", "install", "CP-2", str(pki.root / "ca.pem"), *run]) == 0
        assert cp.security.installed["CentralSystemRootCertificate"] == [pki.ca_pem]
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["security", "certs", "CP-2", *run]) == 0
        assert security_messages.hash_data(pki.ca_pem)["serialNumber"] in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["security", "delete", "CP-2", str(pki.root / "ca.pem"), *run]) == 0
        assert cp.security.installed["CentralSystemRootCertificate"] == []
        assert await asyncio.to_thread(main, ["security", "rotate", "--kinds", "certificate", *run]) == 0
        assert "3 skipped" in capsys.readouterr().out        # nobody connected with a client certificate
