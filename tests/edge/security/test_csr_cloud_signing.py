"""SignCertificate with [ocpp.tls] csr_signing = "cloud", on the edge's side: the real edge and the simulated
charger; the cloud's `certificate` push handed to the edge's downlink as the uplink hands it (the whole way
through Mosquitto and the cloud service: tests/cloud/test_csr_signing_end_to_end.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
from typing import Any, AsyncIterator

from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v16 import call

from contract.v1 import ANSWER_TYPE, CSR_TYPE, Down
from edge.ocpp import certificates
from simulator.charge_point import SimulatedChargePoint
from tests.cloud.test_downlink_end_to_end import wait_until
from tests.edge.conftest import PASSWORD, api_call, wait_for
from tests.edge.security.conftest import TLS
from tests.edge.security.test_profiles import sim

CLOUD_SIGNING = TLS + 'csr_signing = "cloud"\n'


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uplink(enabled: bool = True) -> str:
    """An uplink to a broker that is not there: what goes up stays in the outbox, where the test reads it."""
    return (f'[uplink]\nenabled = {str(enabled).lower()}\nhost = "127.0.0.1"\nport = {closed_port()}\ntls = false\n'
            "reconnect_min_delay = 5\n")


async def outbox(edge: Any, type_: str) -> list[dict[str, Any]]:
    rows = await edge.journal.read(lambda store: store.conn.execute(
        "SELECT body FROM outbox WHERE type = ? ORDER BY n", (type_,)).fetchall())
    return [json.loads(row[0]) for row in rows]


async def forwards(edge: Any) -> list[dict[str, Any]]:
    from edge.journal import Store
    return await edge.journal.read(Store.csr_forwards)


def push(edge: Any, document: dict[str, Any], push_id: str = "push-1", **fields: Any) -> Down:
    return Down(site=edge.config.site.id, kind="certificate", id=push_id, document=document,
                expires_at=fields.pop("expires_at", "2099-01-01T00:00:00Z"), **fields)


async def test_a_csr_with_a_wrong_common_name_is_rejected_at_once_and_nothing_goes_up(make_tls_edge, caplog):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge, sim(edge, "CP-1", tls=None) as cp:
        csr = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-2").decode()
        await cp.wait_online()
        with caplog.at_level(logging.WARNING, logger="edge.ocpp.security_messages"):
            answer = await cp.send(call.SignCertificate(csr=csr))
        assert answer.status == "Rejected"
        assert "SignCertificate refused charger=CP-1: the CSR asks for commonName 'CP-2', not 'CP-1'" in caplog.text
        assert await forwards(edge) == [] and await outbox(edge, CSR_TYPE) == []


async def test_with_the_uplink_off_a_csr_cannot_go_to_the_cloud_and_is_rejected_saying_so(make_tls_edge, caplog):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink(False)) as edge, sim(edge, "CP-1", tls=None) as cp:
        csr = certificates.make_csr(ec.generate_private_key(ec.SECP256R1()), "CP-1").decode()
        await cp.wait_online()
        with caplog.at_level(logging.WARNING, logger="edge.ocpp.security_messages"):
            assert (await cp.send(call.SignCertificate(csr=csr))).status == "Rejected"
        assert 'csr_signing is "cloud" but [uplink] is off' in caplog.text


async def test_a_csr_goes_up_once_and_the_clouds_certificate_reaches_the_charger(make_tls_edge, pki, caplog):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge, sim(edge, "CP-1", tls=None) as cp:
        # The charger is asked for a CSR (as at renewal) and sends it: Accepted, kept, in the outbox once.
        assert (await api_call(edge, "POST", "/security/chargers/CP-1/renew"))["outcome"] == "ok"
        assert (await cp.wait_event("sign_certificate"))["status"] == "Accepted"
        [sent] = await outbox(edge, CSR_TYPE)
        digest = hashlib.sha256(sent["csr"].encode()).hexdigest()
        assert (sent["charger_id"], sent["csr_sha256"]) == ("CP-1", digest)
        assert [(r["status"], r["csr_sha256"]) for r in await forwards(edge)] == [("waiting", digest)]
        # The same CSR again (the charger did not hear our answer): Accepted, not sent up twice.
        await cp.wait_online()
        assert (await cp.send(call.SignCertificate(csr=sent["csr"]))).status == "Accepted"
        assert len(await outbox(edge, CSR_TYPE)) == 1

        downlink = edge.uplink.downlink
        unknown = await downlink.apply(push(edge, {"charger_id": "CP-1", "csr_sha256": "0" * 64, "refused": "x"}))
        assert unknown.status == "rejected" and "no CSR 000000000000... of charger 'CP-1'" in unknown.error
        # A certificate for another key is not handed to the charger.
        other = certificates.make_charger_certificate(pki.ca_pem, pki.ca_key, "CP-1", now=certificates.utcnow())
        wrong = await downlink.apply(push(edge, {"charger_id": "CP-1", "csr_sha256": digest,
                                                 "certificate_chain": [other.certificate.decode()]}, "push-0"))
        assert wrong.status == "rejected" and "the certificate is not for the CSR's key" in wrong.error
        assert (await forwards(edge))[0]["status"] == "refused"


async def test_the_clouds_certificate_waits_for_a_charger_that_is_not_connected(make_tls_edge, pki):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge:
        cp = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                                  reconnect_delay=0.1)
        async with running(cp):
            assert (await api_call(edge, "POST", "/security/chargers/CP-1/renew"))["outcome"] == "ok"
            await cp.wait_event("sign_certificate")
        await wait_for(lambda: "CP-1" not in edge.ocpp.sessions, what="CP-1 gone")
        [sent] = await outbox(edge, CSR_TYPE)
        pem = certificates.sign_csr(pki.ca_pem, pki.ca_key, sent["csr"].encode(), "CP-1", now=certificates.utcnow())
        document = {"charger_id": "CP-1", "csr_sha256": sent["csr_sha256"], "certificate_chain": [pem.decode()]}
        ack = await edge.uplink.downlink.apply(push(edge, document))
        assert (ack.status, ack.kind, ack.error) == ("done", "certificate", None)
        assert (await edge.uplink.downlink.apply(push(edge, document))).status == "done"     # again: nothing twice
        assert (await forwards(edge))[0]["status"] == "signed"
        assert cp.security.certificate is None

        async with running(cp):                 # back (the same charger: it kept the CSR's key): sent now
            await wait_for(lambda: cp.security.certificate, what="the certificate at the charger")
            assert cp.security.certificate == pem
            await wait_until(lambda: _answered(edge), "the answer kept")
        [answer] = await outbox(edge, ANSWER_TYPE)
        assert (answer["csr_sha256"], answer["answer"]) == (sent["csr_sha256"], "Accepted")
        issued = await api_call(edge, "GET", "/security/certificates?charger=CP-1")
        assert [row["answer"] for row in issued] == ["Accepted"]


async def _answered(edge: Any) -> bool:
    rows = await forwards(edge)
    return bool(rows) and rows[0]["status"] == "sent" and rows[0]["answer"] == "Accepted"


@contextlib.asynccontextmanager
async def running(cp: SimulatedChargePoint) -> AsyncIterator[None]:
    task = asyncio.create_task(cp.run())
    try:
        await cp.wait_accepted()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_push_that_expired_on_the_way_is_rejected(make_tls_edge):
    async with make_tls_edge(tls=CLOUD_SIGNING, extra=uplink()) as edge:
        ack = await edge.uplink.downlink.apply(push(edge, {"charger_id": "CP-1", "csr_sha256": "0" * 64,
                                                           "refused": "x"}, expires_at="2020-01-01T00:00:00Z"))
        assert ack.status == "rejected" and "expired" in ack.error
