"""OCPP 2.0.1 block A (Security) between the real edge and the simulated 2.0.1 station (simulator.v201) over
real WebSockets and real TLS on loopback, named after the OCA 2.0.1 test cases (CSMS side) where they match:
the same profiles, CSR checks, signing paths and journal as 1.6 (test_profiles.py, test_security_messages.py,
test_csr_cloud_signing.py), in 2.0.1's words."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from pathlib import Path
from typing import Any, AsyncIterator

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v201 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from contract.v1 import CSR_TYPE
from edge.journal import Store
from edge.ocpp import certificates, security_messages
from edge.ocpp.v201.session import Ocpp201Session
from simulator.tls import client_context
from simulator.v201 import SimulatedStation
from tests.cloud.test_downlink_end_to_end import wait_until
from tests.edge.conftest import PASSWORD, api_call, basic, wait_for
from tests.edge.security.test_csr_cloud_signing import CLOUD_SIGNING, forwards, outbox, push, uplink


@contextlib.asynccontextmanager
async def station(edge: Any, station_id: str, *, tls: ssl.SSLContext | None, password: str | None = PASSWORD,
                  accepted: bool = True, sim: SimulatedStation | None = None) -> AsyncIterator[SimulatedStation]:
    """The simulated 2.0.1 station at ws:// (profiles 0, 1) or wss:// (2, 3) of this edge, running."""
    scheme, port = ("wss", edge.ocpp.bound_tls_port) if tls is not None else ("ws", edge.ocpp.bound_port)
    sim = sim or SimulatedStation(station_id, f"{scheme}://127.0.0.1:{port}/ocpp", password=password, tls=tls,
                                  reconnect_delay=0.05, ramp_seconds=0.2)
    task = asyncio.create_task(sim.run())
    try:
        if accepted:
            await sim.wait_accepted()
            await sim.wait_online()     # booted, statuses sent: it takes requests and sends its own
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _profile_3(pki: Any, station_id: str = "CP-3", days: int = 365) -> ssl.SSLContext:
    cert, key = pki.charger(station_id.lower(), station_id, days=days)
    return client_context(pki.root / "ca.pem", certificate=cert, key=key)


async def _handshake(edge: Any, station_id: str, username: str, password: str) -> int:
    """The HTTP status of a 2.0.1 handshake with this Basic auth (101: let in)."""
    try:
        async with connect(f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp/{station_id}", subprotocols=["ocpp2.0.1"],
                           additional_headers=basic(username, password)) as ws:
            return 101 if ws.subprotocol == "ocpp2.0.1" else 0
    except InvalidStatus as err:
        return err.response.status_code


async def _sent(edge: Any, charger_id: str, action: str) -> list[dict]:
    """The parameters of each `action` the actions log holds for this station, newest first."""
    rows = await edge.journal.read(Store.log, "actions", charger_id, 50)
    return [json.loads(r["request"]) for r in rows if r["action"] == action]


# -- profiles 1 to 3 ------------------------------------------------------------------------------------

async def test_TC_A_01_basic_authentication_valid_password(make_tls_edge):
    async with make_tls_edge() as edge, station(edge, "CP-1", tls=None) as sim:
        assert isinstance(edge.ocpp.sessions["CP-1"], Ocpp201Session)
        assert sim.registration == "Accepted" and edge.ocpp.seen["CP-1"].level == 1


async def test_TC_A_02_A_03_basic_authentication_wrong_username_or_password_refused(make_tls_edge):
    async with make_tls_edge() as edge:
        assert await _handshake(edge, "CP-1", "CP-1", PASSWORD) == 101
        assert await _handshake(edge, "CP-1", "CP-1Invalid", PASSWORD) == 401
        assert await _handshake(edge, "CP-1", "CP-1", "not-the-password-1") == 401
        async with station(edge, "CP-1", tls=None, password="wrong-password-here", accepted=False) as sim:
            await sim.wait_event("connect_failed")
            assert "401" in sim._latest["connect_failed"]["error"]
        assert "CP-1" not in edge.ocpp.sessions


async def test_TC_A_04_tls_server_certificate_valid_profile_2(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-2", tls=client_context(pki.root / "ca.pem")):
        seen = edge.ocpp.seen["CP-2"]
        assert isinstance(edge.ocpp.sessions["CP-2"], Ocpp201Session)
        assert seen.level == 2 and seen.tls_version in ("TLSv1.2", "TLSv1.3") and seen.cert_subject is None


async def test_profile_2_over_plain_ws_is_refused(make_tls_edge):
    async with make_tls_edge() as edge:
        async with station(edge, "CP-2", tls=None, accepted=False) as sim:
            await sim.wait_event("connect_failed")
            assert "403" in sim._latest["connect_failed"]["error"]
        assert "CP-2" not in edge.ocpp.sessions


async def test_TC_A_07_tls_client_certificate_valid_profile_3(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None):
        seen = edge.ocpp.seen["CP-3"]
        assert isinstance(edge.ocpp.sessions["CP-3"], Ocpp201Session)
        assert seen.level == 3 and seen.cert_subject == "CN=CP-3"


async def test_TC_A_08_invalid_client_certificates_are_refused_then_a_valid_one_gets_in(make_tls_edge, pki):
    other = certificates.make_ca("Someone else's CA", now=certificates.utcnow())
    invalid = {"unknown CA": pki.charger("other", "CP-3", ca=(other.certificate, other.key or b"")),
               "expired": pki.charger("expired", "CP-3", days=1, ago=10),
               "another commonName": pki.charger("cp9", "CP-9")}
    async with make_tls_edge() as edge:
        for why, (cert, key) in invalid.items():
            tls = client_context(pki.root / "ca.pem", certificate=cert, key=key)
            async with station(edge, "CP-3", tls=tls, password=None, accepted=False) as sim:
                await sim.wait_event("connect_failed")
                assert not sim.is_accepted(), why
            assert "CP-3" not in edge.ocpp.sessions, why
        async with station(edge, "CP-3", tls=_profile_3(pki), password=None):
            assert edge.ocpp.seen["CP-3"].level == 3


# -- the password (A01) ------------------------------------------------------------------------------------

async def test_TC_A_09_password_rotated_with_SetVariables_BasicAuthPassword(make_tls_edge, pki, tmp_path: Path):
    async with make_tls_edge() as edge, station(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as sim:
        # The station answers and reconnects at once: its answer is read all the same (and journaled).
        result = await api_call(edge, "POST", "/chargers/CP-2/password", body={"rotate": True})
        assert result["stored"] and result["command"]["action"] == "SetVariables"
        assert result["command"]["outcome"] == "ok"
        assert result["command"]["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert result["credentials"]["new_keys"][0]["answer"] == "Accepted"
        [item] = [i for params in await _sent(edge, "CP-2", "SetVariables") for i in params["setVariableData"]
                  if i["variable"]["name"] == "BasicAuthPassword"]
        assert (item["component"], item["variable"]) == ({"name": "SecurityCtrlr"}, {"name": "BasicAuthPassword"})
        assert item["attributeValue"] == "********"          # never the password, in the actions log either
        new = sim.password
        assert new != PASSWORD and 16 <= len(new) <= 40     # the password itself: 2.0.1 sends no hex
        # The station reconnects with the new password (over TLS, profile 2), and that makes it the key.
        await wait_for(lambda: sim.is_accepted() and "CP-2" in edge.ocpp.sessions and
                       edge.ocpp.credentials.keys_for("CP-2").new == (), timeout=10, what="the new key in use")
        state = await api_call(edge, "GET", "/chargers/CP-2/password")
        assert state["current_key"]["origin"] == "rotated" and state["current_key"]["first_used_at"]
        assert await _handshake_tls(edge, pki, "CP-2", PASSWORD) == 401
        assert await _handshake_tls(edge, pki, "CP-2", new) == 101
    # Nowhere on disk: the journal, the communication log, the device model.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert new.encode() not in path.read_bytes(), path


async def _handshake_tls(edge: Any, pki: Any, station_id: str, password: str) -> int:
    try:
        async with connect(f"wss://127.0.0.1:{edge.ocpp.bound_tls_port}/ocpp/{station_id}",
                           ssl=client_context(pki.root / "ca.pem"), subprotocols=["ocpp2.0.1"],
                           additional_headers=basic(station_id, password)):
            return 101
    except InvalidStatus as err:
        return err.response.status_code


async def test_TC_A_10_a_password_the_station_rejects_is_not_stored(make_tls_edge, monkeypatch):
    from simulator.v201 import security as station_security

    # A station whose rule refuses every new password: the edge keeps the old one, and says so.
    monkeypatch.setattr(station_security, "PASSWORD", re.compile(r"(?!)"))
    async with make_tls_edge() as edge, station(edge, "CP-1", tls=None) as sim:
        result = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True})
        assert result["command"]["outcome"] == "rejected" and not result["stored"]
        assert result["command"]["response"]["setVariableResult"][0]["attributeStatus"] == "Rejected"
        assert sim.password == PASSWORD
        assert await _handshake(edge, "CP-1", "CP-1", PASSWORD) == 101


# -- certificates (A02, A03) -------------------------------------------------------------------------------

async def test_TC_A_11_certificate_renewed_by_request_of_the_csms(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None) as sim:
        first = edge.ocpp.seen["CP-3"].cert_serial
        answer = await api_call(edge, "POST", "/security/chargers/CP-3/renew")
        assert answer["outcome"] == "ok" and answer["action"] == "TriggerMessage"
        assert await _sent(edge, "CP-3", "TriggerMessage") == [{"requestedMessage": "SignChargingStationCertificate"}]
        assert (await sim.wait_event("sign_certificate"))["status"] == "Accepted"
        # CertificateSigned (with the CSR's type), accepted; the station back with its new certificate.
        await wait_for(lambda: edge.ocpp.seen["CP-3"].cert_serial not in (None, first), timeout=10,
                       what="the new certificate in use")
        issued = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
        assert issued[0]["serial"] == edge.ocpp.seen["CP-3"].cert_serial and issued[0]["answer"] == "Accepted"
        [sent] = await _sent(edge, "CP-3", "CertificateSigned")
        assert sent["certificateType"] == "ChargingStationCertificate"
        assert edge.ocpp.seen["CP-3"].level == 3


async def test_a_certificate_ending_within_30_days_is_renewed_when_the_station_connects(make_tls_edge, pki):
    tls = _profile_3(pki, days=10)
    first = format(x509.load_pem_x509_certificate((pki.root / "cp-3.pem").read_bytes()).serial_number, "x")
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=tls, password=None) as sim:
        await wait_for(lambda: edge.ocpp.seen["CP-3"].cert_serial not in (None, first), timeout=10,
                       what="the renewed certificate in use")
        assert sim.security.certificate is not None
        issued = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
        assert [row["answer"] for row in issued] == ["Accepted"]


async def test_TC_A_12_v2g_certificate_signed_and_named_as_such(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None) as sim:
        sim.iso15118 = True
        tls_certificate = edge.ocpp.seen["CP-3"].cert_serial
        assert (await sim.send(sim.new_csr("V2GCertificate"))).status == "Accepted"
        await wait_for(lambda: getattr(sim.security, "v2g_certificate", None), what="the V2G certificate")
        cert = x509.load_pem_x509_certificate(sim.security.v2g_certificate)

        async def answered() -> list[dict]:
            rows = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
            return rows if rows and rows[0]["answer"] else []
        [issued] = await wait_until(answered, "the station's answer kept")
        assert (issued["serial"], issued["answer"]) == (format(cert.serial_number, "x"), "Accepted")
        [sent] = await _sent(edge, "CP-3", "CertificateSigned")
        assert sent["certificateType"] == "V2GCertificate"
        # Kept for ISO 15118: the station's link to the edge keeps its own certificate.
        assert edge.ocpp.seen["CP-3"].cert_serial == tls_certificate and sim.security.certificate is None


async def test_TC_A_14_the_station_rejects_the_certificate_and_the_edge_keeps_its_answer(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None) as sim:
        # A CSR whose key the station does not hold (it checks the certificate against its pending key).
        csr = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-3").decode()
        assert (await sim.send(call.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate"))
                ).status == "Accepted"
        await sim.wait_event("security_event", count=2)     # InvalidChargingStationCertificate (after Startup)
        assert sim.security.certificate is None

        async def answered() -> list[dict]:
            rows = await api_call(edge, "GET", "/security/certificates?charger=CP-3")
            return rows if rows and rows[0]["answer"] else []
        assert [row["answer"] for row in await wait_until(answered, "the station's answer kept")] == ["Rejected"]
        events = await wait_until(lambda: edge.journal.read(Store.security_events, "CP-3", 10), "the security event")
        assert "InvalidChargingStationCertificate" in [e["type"] for e in events]


async def test_a_CSR_naming_another_station_is_rejected(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None) as sim:
        csr = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-1").decode()
        assert (await sim.send(call.SignCertificate(csr=csr))).status == "Rejected"
        assert await api_call(edge, "GET", "/security/certificates") == []


async def test_without_a_certificate_type_the_certificate_signed_names_none(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-3", tls=_profile_3(pki), password=None) as sim:
        request = sim.new_csr()
        assert (await sim.send(call.SignCertificate(csr=request.csr))).status == "Accepted"
        await wait_for(lambda: sim.security.certificate, what="the certificate at the station")
        [sent] = await wait_until(lambda: _sent(edge, "CP-3", "CertificateSigned"), "CertificateSigned logged")
        assert "certificateType" not in sent


async def test_SignCertificate_beyond_the_schema_is_refused_on_the_wire_and_nothing_is_signed(make_tls_edge, pki):
    """The boundary on the wire (the library's 2.0.1 schema): a csr longer than 5500 characters, a certificateType
    2.0.1 does not have, a csr that is no CSR: CALLERROR or Rejected, nothing signed, the connection serves on."""
    good = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-1").decode()
    async with make_tls_edge() as edge:
        async with connect(f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp/CP-1", subprotocols=["ocpp2.0.1"],
                           additional_headers=basic("CP-1", PASSWORD)) as ws:
            async def answer(unique_id: str, action: str, payload: dict) -> list:
                await ws.send(json.dumps([2, unique_id, action, payload]))
                while (frame := json.loads(await ws.recv()))[:2] not in ([3, unique_id], [4, unique_id]):
                    if frame[0] == 2:           # the edge's own requests after the boot: answered, not read
                        await ws.send(json.dumps([4, frame[1], "NotSupported", "", {}]))
                return frame
            boot = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}
            assert (await answer("b", "BootNotification", boot))[2]["status"] == "Accepted"
            too_long = await answer("1", "SignCertificate", {"csr": "x" * 5501})
            unknown_type = await answer("2", "SignCertificate", {"csr": good, "certificateType": "SomethingElse"})
            # The library's schema check names them (a maxLength: TypeConstraintViolation; an enum: FormatViolation).
            assert (too_long[0], too_long[2]) == (4, "TypeConstraintViolation")
            assert (unknown_type[0], unknown_type[2]) == (4, "FormatViolation")
            assert (await answer("3", "SignCertificate", {"csr": "not a CSR"}))[2] == {"status": "Rejected"}
            assert await api_call(edge, "GET", "/security/certificates") == []
            assert (await answer("4", "SignCertificate", {"csr": good}))[2] == {"status": "Accepted"}


# -- signed in the cloud, and an edge restart in between ----------------------------------------------------

async def test_a_V2G_CSR_signed_in_the_cloud_reaches_the_station_with_its_type_after_an_edge_restart(make_tls_edge,
                                                                                                    pki):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge:
        async with station(edge, "CP-1", tls=None) as sim:
            sim.iso15118 = True
            assert (await sim.send(sim.new_csr("V2GCertificate"))).status == "Accepted"
            [sent] = await outbox(edge, CSR_TYPE)
            key = sim.security.pending_key
    # The edge restarts (the same state directory); the cloud's answer comes to the new one.
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge:
        pem = certificates.sign_csr(pki.ca_pem, pki.ca_key, sent["csr"].encode(), "CP-1", now=certificates.utcnow())
        document = {"charger_id": "CP-1", "csr_sha256": sent["csr_sha256"], "certificate_chain": [pem.decode()]}
        assert (await edge.uplink.downlink.apply(push(edge, document))).status == "done"
        back = SimulatedStation("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                reconnect_delay=0.05, ramp_seconds=0.2)
        back.iso15118, back.security.pending_key = True, key      # the same station: it kept the CSR's key
        async with station(edge, "CP-1", tls=None, sim=back):
            await wait_for(lambda: getattr(back.security, "v2g_certificate", None), timeout=10,
                           what="the certificate at the station")
            assert back.security.v2g_certificate == pem

            async def answered() -> list[dict]:
                rows = await forwards(edge)
                return rows if rows and rows[0]["status"] == "sent" else []
            assert (await wait_until(answered, "the answer kept"))[0]["answer"] == "Accepted"
            [signed] = await _sent(edge, "CP-1", "CertificateSigned")
            assert signed["certificateType"] == "V2GCertificate"


# -- the CA store (M03, M04, M05), as `edgectl security` sends it -----------------------------------------------

async def test_install_list_and_delete_a_root_certificate_on_a_201_station(make_tls_edge, pki):
    async with make_tls_edge() as edge, station(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as sim:
        pem = pki.ca_pem.decode()
        done = await api_call(edge, "POST", "/chargers/CP-2/commands/InstallCertificate", body={
            "params": {"certificateType": "CentralSystemRootCertificate", "certificate": pem}, "reason": "test"})
        assert done["outcome"] == "ok" and done["response"]["status"] == "Accepted"
        assert sim.security.installed["CSMSRootCertificate"] == [pki.ca_pem]       # 2.0.1's name for it
        ids = await api_call(edge, "POST", "/chargers/CP-2/commands/GetInstalledCertificateIds", body={
            "params": {"certificateType": "CentralSystemRootCertificate"}, "reason": "test"})
        assert ids["response"]["certificateHashDataChain"] == [
            {"certificateType": "CSMSRootCertificate", "certificateHashData": security_messages.hash_data(pki.ca_pem)}]
        gone = await api_call(edge, "POST", "/chargers/CP-2/commands/DeleteCertificate", body={
            "params": {"certificateHashData": security_messages.hash_data(pki.ca_pem)}, "reason": "test"})
        assert gone["response"]["status"] == "Accepted"
        assert sim.security.installed["CSMSRootCertificate"] == []
