"""Security profiles 2 and 3 over real TLS on loopback, named after the OCA 1.6 test cases where they match.

The simulated charger connects over wss:// trusting the site CA (profile 2, with its password) and with
a client certificate (profile 3). What must be refused is refused at the handshake and shows in the
charger's network log with the reason: plain ws:// at profile 2, a certificate from another CA, an
expired one, one naming another charger, TLS 1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, AsyncIterator

import pytest

from edge.config import ConfigError, parse_config
from edge.journal import Store
from edge.ocpp import certificates
from edge.ocpp.tls import WHITEPAPER_CIPHERS
from simulator.charge_point import SimulatedChargePoint
from simulator.tls import client_context
from tests.edge.conftest import PASSWORD, api_call, wait_for
from tests.edge.security.conftest import CHARGERS


@contextlib.asynccontextmanager
async def sim(edge: Any, charger_id: str, *, tls: ssl.SSLContext | None, password: str | None = PASSWORD,
              accepted: bool = True) -> AsyncIterator[SimulatedChargePoint]:
    scheme, port = ("wss", edge.ocpp.bound_tls_port) if tls is not None else ("ws", edge.ocpp.bound_port)
    cp = SimulatedChargePoint(charger_id, f"{scheme}://127.0.0.1:{port}/ocpp", password=password, tls=tls,
                              reconnect_delay=0.1)
    task = asyncio.create_task(cp.run())
    try:
        if accepted:
            await cp.wait_accepted()
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def refusal_of(edge: Any, charger_id: str) -> str:
    async def noted() -> str | None:
        await edge.ocpp.presence.flush()
        rows = await edge.journal.read(Store.latest_refusals, charger_id)
        return rows[0]["reason"] if rows else None
    for _ in range(200):
        reason = await noted()
        if reason:
            return reason
        await asyncio.sleep(0.02)
    raise AssertionError(f"no refusal noted for {charger_id}")


async def test_TC_086_server_certificate_valid_profile_2(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")):
        seen = edge.ocpp.seen["CP-2"]
        assert seen.level == 2 and seen.tls_version in ("TLSv1.2", "TLSv1.3")
        assert edge.ocpp.seen["CP-2"].cert_subject is None


async def test_TC_086_tls_1_2_uses_a_whitepaper_cipher_suite(make_tls_edge, pki):
    tls12 = client_context(pki.root / "ca.pem", versions=(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2))
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=tls12):
        seen = edge.ocpp.seen["CP-2"]
        assert seen.tls_version == "TLSv1.2" and seen.cipher in WHITEPAPER_CIPHERS


async def test_TC_085_basic_auth_inside_tls_wrong_password_refused(make_tls_edge, pki):
    async with make_tls_edge() as edge:
        async with sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem"), password="wrong-password-here",
                       accepted=False) as cp:
            await cp.wait_event("connect_failed")
            assert "401" in cp._latest["connect_failed"]["error"]
        assert "CP-2" not in edge.ocpp.sessions


async def test_TC_087_client_certificate_valid_profile_3(make_tls_edge, pki):
    cert, key = pki.charger("cp3", "CP-3")
    async with make_tls_edge() as edge, sim(edge, "CP-3", password=None,
                                            tls=client_context(pki.root / "ca.pem", certificate=cert, key=key)):
        seen = edge.ocpp.seen["CP-3"]
        assert seen.level == 3 and seen.cert_subject == "CN=CP-3"
        stored = await edge.journal.read(lambda store: store.conn.execute(
            "SELECT level, cert_sha256 FROM charger_security WHERE charger_id = 'CP-3'").fetchone())
        assert stored[0] == 3 and len(stored[1]) == 64
        listed = await api_call(edge, "GET", "/security")
        assert listed["tls"]["port"] == edge.ocpp.bound_tls_port
        cp3 = next(c for c in listed["chargers"] if c["charger_id"] == "CP-3")
        assert cp3["security_profile"] == 3 and cp3["seen"]["level"] == 3 and cp3["connected"]
        assert (await api_call(edge, "POST", "/security/reload"))["reloaded"] is False


async def test_plain_ws_at_profile_2_is_refused_and_logged(make_tls_edge):
    async with make_tls_edge() as edge:
        async with sim(edge, "CP-2", tls=None, accepted=False) as cp:
            await cp.wait_event("connect_failed")
            assert "403" in cp._latest["connect_failed"]["error"]
        reason = await refusal_of(edge, "CP-2")
        assert "security profile 2: plain ws:// is refused" in reason
        assert f"port {edge.ocpp.bound_tls_port}" in reason


async def test_profile_3_without_a_client_certificate_is_refused(make_tls_edge, pki):
    async with make_tls_edge() as edge:
        async with sim(edge, "CP-3", password=None, tls=client_context(pki.root / "ca.pem"), accepted=False) as cp:
            await cp.wait_event("connect_failed")
        assert "no TLS client certificate" in await refusal_of(edge, "CP-3")


async def test_a_certificate_naming_another_charger_is_refused(make_tls_edge, pki):
    cert, key = pki.charger("cp9", "CP-9")
    async with make_tls_edge() as edge:
        async with sim(edge, "CP-3", password=None, accepted=False,
                       tls=client_context(pki.root / "ca.pem", certificate=cert, key=key)) as cp:
            await cp.wait_event("connect_failed")
        assert "commonName 'CP-9', not 'CP-3'" in await refusal_of(edge, "CP-3")


async def _refused_at_tls(edge: Any, pki: Any, tls: ssl.SSLContext) -> str:
    """Connect CP-3 properly first (so its address is known), then with `tls`: the TLS failure's reason."""
    cert, key = pki.charger("cp3", "CP-3")
    async with sim(edge, "CP-3", password=None, tls=client_context(pki.root / "ca.pem", certificate=cert, key=key)):
        pass
    before = len(edge.ocpp.tls_failures)
    async with sim(edge, "CP-3", password=None, tls=tls, accepted=False) as cp:
        await cp.wait_event("connect_failed")
        await wait_for(lambda: len(edge.ocpp.tls_failures) > before, what="the TLS failure reported")
    failure = edge.ocpp.tls_failures[-1]
    assert failure["charger_id"] == "CP-3" and failure["address"] == "127.0.0.1", failure
    assert failure["reason"] in await refusal_of(edge, "CP-3")
    return failure["reason"]


async def test_a_certificate_from_another_ca_is_refused_and_logged(make_tls_edge, pki):
    other = certificates.make_ca("Someone else's CA", now=certificates.utcnow())
    cert, key = pki.charger("foreign", "CP-3", ca=(other.certificate, other.key or b""))
    async with make_tls_edge() as edge:
        reason = await _refused_at_tls(edge, pki, client_context(pki.root / "ca.pem", certificate=cert, key=key))
    assert "client certificate refused" in reason and "issuer" in reason


async def test_an_expired_certificate_is_refused_and_logged(make_tls_edge, pki):
    cert, key = pki.charger("expired", "CP-3", days=1, ago=10)
    async with make_tls_edge() as edge:
        reason = await _refused_at_tls(edge, pki, client_context(pki.root / "ca.pem", certificate=cert, key=key))
    assert "expired" in reason


async def test_tls_1_1_is_refused_and_logged(make_tls_edge, pki):
    cert, key = pki.charger("cp3", "CP-3")
    old = client_context(pki.root / "ca.pem", certificate=cert, key=key,
                         versions=(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1))
    async with make_tls_edge() as edge:
        reason = await _refused_at_tls(edge, pki, old)
    assert "older than 1.2" in reason


async def test_a_renewed_server_certificate_is_served_without_a_restart(make_tls_edge, pki):
    async with make_tls_edge() as edge:
        first = await _server_serial(edge, pki)
        renewed = certificates.make_server_certificate(pki.ca_pem, pki.ca_key, ["127.0.0.1"],
                                                       now=certificates.utcnow())
        pki.write("server", renewed)
        assert edge.ocpp.tls.check() is True
        assert await _server_serial(edge, pki) != first
        assert edge.ocpp.tls.check() is False     # unchanged files: nothing to do
        (pki.root / "server.key").write_text("half written")
        assert edge.ocpp.tls.check() is False and edge.ocpp.tls.last_error   # the old one is kept
        assert await _server_serial(edge, pki) == await _server_serial(edge, pki)


async def _server_serial(edge: Any, pki: Any) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp.bound_tls_port,
                                              ssl=client_context(pki.root / "ca.pem"))
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        from cryptography import x509
        return format(x509.load_der_x509_certificate(der).serial_number, "x")
    finally:
        writer.close()


async def test_TC_083_security_profile_upgraded_only_after_the_charger_was_seen_at_the_new_level(make_tls_edge, pki):
    """CP-1 (profile 1 in the config) on ws://: SecurityProfile 2 is refused (it could be stranded); once it has
    connected over wss:// with its password, the change is sent and accepted; 3 waits for a client certificate."""
    async def change(value: str, expect: int) -> dict:
        return await api_call(edge, "POST", "/chargers/CP-1/commands/ChangeConfiguration",
                              body={"params": {"key": "SecurityProfile", "value": value}, "reason": "test"},
                              expect=expect)
    async with make_tls_edge() as edge:
        async with sim(edge, "CP-1", tls=None):
            refused = await change("2", 400)
            assert "before it is told SecurityProfile 2" in refused["response"]
        async with sim(edge, "CP-1", tls=client_context(pki.root / "ca.pem")) as cp:
            ok = await change("2", 200)
            assert ok["outcome"] == "ok" and ok["response"]["status"] == "Accepted"
            assert cp.config.value("SecurityProfile") == "2"
            assert "client certificate" in (await change("3", 400))["response"]
        cert, key = pki.charger("cp1", "CP-1")
        async with sim(edge, "CP-1", tls=client_context(pki.root / "ca.pem", certificate=cert, key=key)):
            assert (await change("3", 200))["outcome"] == "ok"


async def test_TC_084_a_profile_below_the_configured_one_is_not_sent(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")):
        refused = await api_call(edge, "POST", "/chargers/CP-2/commands/ChangeConfiguration",
                                 body={"params": {"key": "SecurityProfile", "value": "1"}, "reason": "t"}, expect=400)
        assert "configured at security profile 2" in refused["response"]


def test_a_profile_2_charger_needs_tls_in_the_config():
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid = "s"\n' + CHARGERS, "t.toml")
    assert 'id "CP-2").security_profile: 2 needs wss://' in str(err.value)
