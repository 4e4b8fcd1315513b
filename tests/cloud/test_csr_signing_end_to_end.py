"""A charger's CSR signed with the operator's CA in the cloud, the whole way (issue 17): the simulated charger
sends SignCertificate to the real edge ([ocpp.tls] csr_signing = "cloud"), the CSR goes up through a real
Mosquitto to the real cloud service (SQLite and PostgreSQL), which signs it and sends the certificate down;
the edge hands it to the charger as CertificateSigned and its answer goes back up. Also across a restart of
the edge between the CSR and the certificate, with the charger away until the certificate is there."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, AsyncIterator

from cryptography import x509

from edge.config import parse_config
from edge.journal import Store
from edge.ocpp import certificates
from simulator.charge_point import SimulatedChargePoint
from tests.cloud.test_csr_signing import make_signing_cloud, operator_ca  # noqa: F401 - fixtures
from tests.cloud.test_downlink_end_to_end import wait_until
from tests.edge.conftest import PASSWORD, api_call, running_edge, site_toml, wait_for
from tests.edge.security.conftest import CHARGERS, TLS, Pki
from tests.edge.security.test_csr_cloud_signing import running
from tests.mqtt_broker import MosquittoBroker

SITE = "test-site"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_pki(state: Path) -> Pki:
    """The site's own CA and server certificate (wss:// is served; the site CA signs nothing here)."""
    root = state / "tls"
    root.mkdir(parents=True)
    now = certificates.utcnow()
    ca = certificates.make_ca("Site CA", now=now)
    server = certificates.make_server_certificate(ca.certificate, ca.key or b"", ["127.0.0.1"], now=now)
    for name, data in (("ca.pem", ca.certificate), ("ca.key", ca.key), ("server.pem", server.certificate),
                       ("server.key", server.key)):
        (root / name).write_bytes(data or b"")
    return Pki(root, ca.certificate, ca.key or b"")


@contextlib.asynccontextmanager
async def edge_on(broker: MosquittoBroker, state: Path, ocpp_port: int) -> AsyncIterator[Any]:
    uplink = (f'[uplink]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\ntls = false\nkeepalive = 5\n'
              "reconnect_min_delay = 0.1\nreconnect_max_delay = 0.5\n")
    text = site_toml(state, chargers=CHARGERS, extra=uplink, ocpp_port=ocpp_port).replace(
        "[api]", TLS + 'csr_signing = "cloud"\n[api]', 1)
    async with running_edge(parse_config(text, "test.toml", state_dir=str(state))) as edge:
        yield edge


async def csrs(cloud: Any, token: str) -> list[dict[str, Any]]:
    status, body = await cloud.get(f"/api/v1/sites/{SITE}/csrs", token)
    assert status == 200, body
    return body["items"]


def issued_by(pem: bytes, ca_file: Path) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_file.read_bytes()))
    return cert


async def test_a_charger_gets_a_certificate_signed_in_the_cloud(make_signing_cloud, broker, operator_ca, tmp_path):
    state = tmp_path / "edge"
    site_pki(state)
    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        async with edge_on(broker, state, 0) as edge:
            cp = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                      reconnect_delay=0.1)
            async with running(cp):
                assert (await api_call(edge, "POST", "/security/chargers/CP-1/renew"))["outcome"] == "ok"
                assert (await cp.wait_event("sign_certificate"))["status"] == "Accepted"
                await wait_for(lambda: cp.security.certificate, timeout=20, what="the certificate at the charger")
                cert = issued_by(cp.security.certificate, operator_ca[0])
                assert certificates.common_name(cert) == "CP-1"

                async def answered() -> dict | None:
                    rows = await csrs(cloud, token)
                    return rows[0] if rows and rows[0]["answer"] else None
                row = await wait_until(answered, "the charger's answer in the cloud")
                assert (row["status"], row["serial"], row["delivery"], row["push_status"], row["answer"]) == (
                    "issued", format(cert.serial_number, "x"), "acked", "done", "Accepted")
                [kept] = await edge.journal.read(Store.csr_forwards, "CP-1")
                assert (kept["status"], kept["answer"], kept["serial"]) == ("sent", "Accepted", row["serial"])


async def test_an_edge_restart_between_the_csr_and_the_certificate(make_signing_cloud, broker, operator_ca, tmp_path):
    state, port = tmp_path / "edge", free_port()
    site_pki(state)
    cp = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{port}/ocpp", password=PASSWORD, reconnect_delay=0.1)
    # The cloud is away: the CSR is accepted, kept and waits in the edge's outbox. Then the edge stops.
    async with edge_on(broker, state, port) as edge, running(cp):
        assert (await api_call(edge, "POST", "/security/chargers/CP-1/renew"))["outcome"] == "ok"
        assert (await cp.wait_event("sign_certificate"))["status"] == "Accepted"
        [waiting] = await edge.journal.read(Store.csr_forwards, "CP-1")
        assert waiting["status"] == "waiting"
    assert cp.security.certificate is None and cp.security.pending_key is not None

    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        async with edge_on(broker, state, port) as edge:
            # The edge is back, the charger is not: the certificate comes and waits for it.
            async def kept() -> dict | None:
                rows = await edge.journal.read(Store.csr_forwards, "CP-1")
                return rows[0] if rows and rows[0]["status"] == "signed" else None
            row = await wait_until(kept, "the cloud's certificate at the edge")
            assert row["csr_sha256"] == waiting["csr_sha256"]
            # The charger was off while away: it boots again, its CSR's key kept (as in its flash). A new
            # simulator object: the old one, run again after its cancelled run, reconnected and sent no frame
            # (4 runs of 4 here; left for the simulator), and the edge sends nothing to a charger before its
            # first frame or boot.
            back = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{port}/ocpp", password=PASSWORD, reconnect_delay=0.1)
            back.security = cp.security
            async with running(back):
                await wait_for(lambda: back.security.certificate, timeout=20, what="the certificate at the charger")
                cert = issued_by(back.security.certificate, operator_ca[0])
                assert format(cert.serial_number, "x") == row["serial"]

                async def answered() -> dict | None:
                    rows = await csrs(cloud, token)
                    return rows[0] if rows and rows[0]["answer"] else None
                listed = await wait_until(answered, "the charger's answer in the cloud")
                assert (listed["status"], listed["answer"], listed["delivery"]) == ("issued", "Accepted", "acked")
        # Sent up once, signed once: one CSR, one certificate push.
        assert len(await csrs(cloud, token)) == 1
        status, pushes = await cloud.get(f"/api/v1/sites/{SITE}/pushes", token, kind="certificate")
        assert [p["status"] for p in pushes["items"]] == ["done"]
