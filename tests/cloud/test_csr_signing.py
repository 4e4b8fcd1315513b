"""Chargers' CSRs signed with the operator's CA in the cloud (issue 17): the real cloud service on SQLite and
PostgreSQL, a real Mosquitto, a site speaking contract v1, certificates made here with `cryptography`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jsonschema import Draft202012Validator

from contract.v1 import ANSWER_TYPE, CSR_TYPE, down_topic
from edge.ocpp import certificates
from tests.cloud.conftest import Cloud
from tests.cloud.fakes import message
from tests.cloud.test_startup_errors import ROOT

SITE = "site-a"


@pytest.fixture
def operator_ca(tmp_path: Path) -> tuple[Path, Path]:
    """The operator's CA files, as CLOUD_CA_CERTIFICATE and CLOUD_CA_KEY name them."""
    ca = certificates.make_ca("Operator CA", now=certificates.utcnow())
    cert, key = tmp_path / "operator-ca.pem", tmp_path / "operator-ca.key"
    cert.write_bytes(ca.certificate)
    key.write_bytes(ca.key or b"")
    return cert, key


@pytest.fixture
def make_signing_cloud(make_cloud, operator_ca) -> Callable[..., Any]:
    """The cloud service with the operator's CA (or without: ca=False)."""
    def running(ca: bool = True) -> Any:
        return make_cloud(settings={"ca_certificate": str(operator_ca[0]), "ca_key": str(operator_ca[1])}
                          if ca else None)
    return running


def csr_message(seq: int, charger_id: str, common_name: str | None = None, key: Any = None) -> dict[str, Any]:
    """A certificate.csr message as the edge sends it (issue 17)."""
    pem = certificates.make_csr(key or ec.generate_private_key(ec.SECP256R1()), common_name or charger_id).decode()
    return message(seq, CSR_TYPE, {"charger_id": charger_id, "csr": pem, "csr_sha256": hashlib.sha256(
        pem.encode()).hexdigest(), "requested_at": "2026-03-01T10:00:00.000Z"})


def charger_seen(seq: int, charger_id: str = "CP-1") -> dict[str, Any]:
    return message(seq, "charger.booted", {"charger_id": charger_id, "registration": "Accepted", "vendor": "V",
                                           "model": "M", "serial_number": "1", "firmware_version": "1"})


async def next_certificate(site: Any) -> dict[str, Any]:
    while True:
        received, down = await site.next_down(timeout=10)
        if received.topic == down_topic(SITE, "certificate"):
            assert not received.retain
            return down


async def listing(cloud: Cloud, token: str, **params: Any) -> list[dict[str, Any]]:
    status, body = await cloud.get(f"/api/v1/sites/{SITE}/csrs", token, **params)
    assert status == 200, body
    _, document = await cloud.get("/api/openapi.json", None)
    Draft202012Validator({"$ref": "#/components/schemas/CsrList", "components": document["components"]}).validate(body)
    return body["items"]


async def test_a_csr_of_a_charger_of_the_site_is_signed_sent_down_and_its_answer_listed(
        make_signing_cloud, make_site, operator_ca):
    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        site = make_site()
        await site.subscribe_down()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = csr_message(2, "CP-1", key=key)
        await site.up("status", [charger_seen(1), csr])

        down = await next_certificate(site)
        document = down["document"]
        assert (document["charger_id"], document["csr_sha256"]) == ("CP-1", csr["body"]["csr_sha256"])
        cert = x509.load_pem_x509_certificate(document["certificate_chain"][0].encode())
        ca = x509.load_pem_x509_certificate(operator_ca[0].read_bytes())
        cert.verify_directly_issued_by(ca)
        assert certificates.common_name(cert) == "CP-1"
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert len(document["certificate_chain"]) == 1        # a root CA: the charger holds it, it does not go down

        [row] = await listing(cloud, token)
        assert (row["status"], row["serial"], row["answer"]) == ("issued", format(cert.serial_number, "x"), None)
        assert row["delivery"] in ("pending", "published")      # the broker's PUBACK may be recorded after we got it
        await site.ack(kind="certificate", id=down["id"], status="done")
        await site.up("status", [message(3, ANSWER_TYPE, {"charger_id": "CP-1", "csr_sha256": document["csr_sha256"],
                                                          "serial": row["serial"], "answer": "Accepted"})])
        await cloud.wait_handled(3)        # the CSR's batch, the ack, the answer's batch
        [row] = await listing(cloud, token, status="issued")
        assert (row["delivery"], row["push_status"], row["answer"]) == ("acked", "done", "Accepted")
        assert await listing(cloud, token, status="pending") == []


async def test_a_csr_with_a_wrong_common_name_is_refused_with_the_reason(make_signing_cloud, make_site):
    """An edge checks this itself (tests/edge/security/test_csr_cloud_signing.py); the cloud does not trust it to."""
    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        site = make_site()
        await site.subscribe_down()
        await site.up("status", [charger_seen(1), charger_seen(2, "CP-2"), csr_message(3, "CP-1", "CP-2")])
        down = await next_certificate(site)
        reason = "the CSR asks for commonName 'CP-2', not 'CP-1'"
        assert down["document"]["refused"] == reason and "certificate_chain" not in down["document"]
        [row] = await listing(cloud, token)
        assert (row["status"], row["error"], row["serial"]) == ("refused", reason, None)


@pytest.mark.parametrize("why, csr", [
    ("not a charger of this site", lambda: csr_message(2, "CP-9")),
    ("an RSA key of 1024 bits; at least 2048 are needed",
     lambda: csr_message(2, "CP-1", key=rsa.generate_private_key(65537, 1024))),
    ("csr_sha256 is not the SHA-256 of the CSR sent",
     lambda: {**(m := csr_message(2, "CP-1")), "body": {**m["body"], "csr_sha256": "0" * 64}}),
])
async def test_what_the_cloud_does_not_sign(make_signing_cloud, make_site, why, csr):
    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        site = make_site()
        await site.subscribe_down()
        await site.up("status", [charger_seen(1), csr()])
        down = await next_certificate(site)
        assert why in down["document"]["refused"]
        [row] = await listing(cloud, token, status="refused")
        assert why in row["error"]


async def test_without_a_ca_a_csr_is_refused_saying_so(make_signing_cloud, make_site):
    async with make_signing_cloud(ca=False):
        site = make_site()
        await site.subscribe_down()
        await site.up("status", [charger_seen(1), csr_message(2, "CP-1")])
        down = await next_certificate(site)
        assert "no CA to sign with (CLOUD_CA_CERTIFICATE" in down["document"]["refused"]


async def test_the_same_csr_sent_again_gets_the_same_certificate(make_signing_cloud, make_site):
    """The site gave up waiting (the push was lost, its wait expired) and sends the CSR again."""
    async with make_signing_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        site = make_site()
        await site.subscribe_down()
        csr = csr_message(2, "CP-1")
        await site.up("status", [charger_seen(1), csr])
        first = await next_certificate(site)
        await site.up("status", [{**csr_message(3, "CP-1"), "body": csr["body"]}])      # a new message, same CSR
        again = await next_certificate(site)
        assert again["id"] != first["id"]
        assert again["document"] == first["document"]
        [row] = await listing(cloud, token)
        assert (row["status"], row["push_id"]) == ("issued", again["id"])


def test_an_unreadable_ca_stops_the_start_in_one_line(tmp_path: Path, operator_ca) -> None:
    operator_ca[1].unlink()
    for env, expected in (
            ({"CLOUD_CA_CERTIFICATE": str(operator_ca[0]), "CLOUD_CA_KEY": str(operator_ca[1])},
             f"cloud serve: cannot start: the operator CA cannot be used: CLOUD_CA_KEY={operator_ca[1]}: "
             "cannot be read (No such file or directory)"),
            ({"CLOUD_CA_CERTIFICATE": str(operator_ca[0]), "CLOUD_CA_KEY": str(operator_ca[0])},
             "cannot start: the operator CA cannot be used: CLOUD_CA_CERTIFICATE="),
            ({"CLOUD_CA_CERTIFICATE": str(operator_ca[0])},
             "error: CLOUD_CA_CERTIFICATE and CLOUD_CA_KEY go together")):
        proc = subprocess.run([sys.executable, "-m", "cloud", "--database-url", f"sqlite:///{tmp_path / 'c.db'}",
                               "serve", "--http-port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", **env})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1, proc.stderr
        assert expected in lines[0], lines[0]
        assert "Traceback" not in proc.stdout + proc.stderr


def test_the_answer_a_ca_gives_is_pure_and_keeps_the_certificate_within_the_cas_life() -> None:
    from cloud.certificates import OperatorCa, settle
    now = certificates.utcnow()
    ca = certificates.make_ca("Operator CA", now=now - timedelta(days=3600), days=3650)
    operator = OperatorCa(ca.certificate, ca.key or b"", (), days=730)
    pem = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-1").decode()
    row = {"status": "pending", "charger_id": "CP-1", "csr": pem, "known": 1,
           "csr_sha256": hashlib.sha256(pem.encode()).hexdigest()}
    settled = settle(row, operator, now)
    cert = x509.load_pem_x509_certificate(settled.certificate_chain[0].encode())
    assert cert.not_valid_after_utc <= x509.load_pem_x509_certificate(ca.certificate).not_valid_after_utc
    assert settled.refused is None and json.dumps(settled.certificate_chain)
