"""TLS to the broker: the CA file with a password, and a client certificate whose
CN is the site id (the broker takes it as the username the ACL sees)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.edge.uplink.conftest import SITE, Cloud, drained, eventually
from tests.edge.uplink.helpers import make_cdrs
from tests.mqtt_broker import ACL_FILE, MosquittoBroker, TlsFiles, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificates")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, and a client certificate for the site."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test-ca", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn, ext in (("server", "localhost", ["-extfile", "server.ext"]), ("client", SITE, [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", *ext, cwd=folder)
    return {name: folder / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki):
    """TLS only, client certificates required; their CN is the username."""
    tls = TlsFiles(pki["ca.crt"], pki["server.crt"], pki["server.key"], require_certificate=True,
                   use_identity_as_username=True)
    cloud_port = free_port()
    # The test cloud logs in by password on a plain loopback listener (as the production config allows).
    with MosquittoBroker(tmp_path_factory.mktemp("tls-broker"), tls=tls, acl_file=ACL_FILE,
                         users={"cloud": "cloud-pw", SITE: "unused"},
                         extra=f"listener {cloud_port} 127.0.0.1") as b:
        b.cloud_port = cloud_port
        yield b


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory: pytest.TempPathFactory, pki):
    """TLS with a server certificate only; sites log in with a password."""
    tls = TlsFiles(pki["ca.crt"], pki["server.crt"], pki["server.key"])
    with MosquittoBroker(tmp_path_factory.mktemp("tls-pw-broker"), tls=tls, users={SITE: "pw"},
                         acl_file=ACL_FILE) as b:
        yield b


async def test_tls_with_a_client_certificate(make_uplinked_edge, pki, broker, tmp_path):
    cloud = Cloud(broker, client_id="tls-cloud", username="cloud", password="cloud-pw",
                  port=broker.cloud_port).start()
    async with make_uplinked_edge(ca_file=str(pki["ca.crt"]), cert_file=str(pki["client.crt"]),
                                  key_file=str(pki["client.key"])) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="a TLS connection")
        await make_cdrs(edge, 2)
        await drained(edge)
        status = await edge.uplink.status()
    cloud.stop()
    assert status["tls"] and status["streams"]["cdr"]["delivered"] == 2
    assert len(cloud.up_messages("cdr")) == 2


async def test_tls_with_a_password_and_a_wrong_ca_is_refused(make_uplinked_edge, pki, password_broker, tmp_path):
    other = tmp_path / "other-pki"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=someone-else", cwd=other)
    (tmp_path / "uplink-password").write_text("pw\n")
    settings = dict(host=password_broker.host, port=password_broker.port, password_file="uplink-password")
    async with make_uplinked_edge(ca_file=str(pki["ca.crt"]), **settings) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="a TLS connection with a password")
    async with make_uplinked_edge(ca_file=str(other / "ca.crt"), **settings) as edge:
        await eventually(lambda: edge.uplink.last_error, what="the failed handshake")
        assert "certificate verify failed" in edge.uplink.last_error
        assert edge.uplink.connection is None



