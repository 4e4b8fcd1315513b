"""A site with TLS: its CA, server certificate and chargers' certificates made here with `cryptography`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from edge.config import parse_config
from edge.ocpp import certificates
from tests.edge.conftest import PASSWORD_HASH, running_edge, site_toml

CHARGERS = f"""
[[chargers]]
id = "CP-1"
password_hash = "{PASSWORD_HASH}"
connectors = 2

[[chargers]]
id = "CP-2"
password_hash = "{PASSWORD_HASH}"
security_profile = 2

[[chargers]]
id = "CP-3"
security_profile = 3
"""

TLS = """
[ocpp.tls]
port = 0
https_port = 0
"""


@dataclass
class Pki:
    root: Path
    ca_pem: bytes
    ca_key: bytes

    def write(self, name: str, issued: certificates.Issued) -> tuple[Path, Path]:
        cert, key = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert.write_bytes(issued.certificate)
        if issued.key is not None:
            key.write_bytes(issued.key)
        return cert, key

    def charger(self, name: str, common_name: str, *, days: int = 365, ago: int = 0,
                ca: tuple[bytes, bytes] | None = None) -> tuple[Path, Path]:
        """A charger's certificate. The default lasts beyond the edge's renewal window (30 days): one inside it
        is renewed as soon as the charger is ready (ExtendedTriggerMessage -> SignCertificate ->
        CertificateSigned), and the charger then reconnects with the new one, under a test that did not ask
        for that (TC_083 once found CP-1 "not connected" in the middle of it)."""
        ca_pem, ca_key = ca or (self.ca_pem, self.ca_key)
        issued = certificates.make_charger_certificate(ca_pem, ca_key, common_name, days=days,
                                                       now=certificates.utcnow() - timedelta(days=ago))
        return self.write(name, issued)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    root = tmp_path / "tls"
    root.mkdir()
    now = certificates.utcnow()
    ca = certificates.make_ca("Test site CA", now=now)
    (root / "ca.pem").write_bytes(ca.certificate)
    (root / "ca.key").write_bytes(ca.key or b"")
    server = certificates.make_server_certificate(ca.certificate, ca.key or b"", ["127.0.0.1", "localhost"], now=now)
    (root / "server.pem").write_bytes(server.certificate)
    (root / "server.key").write_bytes(server.key or b"")
    return Pki(root, ca.certificate, ca.key or b"")


@pytest.fixture
def make_tls_edge(tmp_path: Path, pki: Pki) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def _make(clock: Any = None, chargers: str = CHARGERS, tls: str = TLS, **kwargs: Any) -> AsyncIterator[Any]:
        text = site_toml(tmp_path, chargers=chargers, **kwargs).replace("[api]", tls + "[api]", 1)
        config = parse_config(text, "test.toml", state_dir=str(tmp_path))
        async with running_edge(config, clock) as edge:
            yield edge
    return _make
