"""Where chargers upload their logs and fetch their firmware (docs/security.md, "Uploads and downloads").

With [ocpp.tls] the edge serves both over HTTPS on [ocpp.tls] https_port with its server certificate, and a
charger that came over wss:// is handed https:// URLs under the name it used; the simulated charger uploads
and downloads with a real TLS client that checks the certificate against the site CA and the name. The
one-time token in those URLs is the credential, so no log the edge keeps or shows carries it.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from hypothesis import given, strategies as st

from edge.journal import Store
from edge.ocpp import certificates
from edge.ocpp.masking import MASK, TOKEN_PATHS, mask_frame, mask_payload
from simulator.tls import client_context
from tests.edge.conftest import api_call
from tests.edge.security.test_profiles import sim

_TOKENISH = re.compile(r"[A-Za-z0-9_-]{16,}")


async def _kept(edge: Any, charger_id: str) -> str:
    """Everything the edge keeps and shows of the charger's traffic: its actions and communication logs."""
    logs = [await api_call(edge, "GET", f"/chargers/{charger_id}/logs/{name}?limit=500")
            for name in ("actions", "communication")]
    return json.dumps(logs)


async def sent_request(edge: Any, charger_id: str, action: str) -> dict:
    """The request the edge sent, as the actions log keeps it."""
    rows = await api_call(edge, "GET", f"/chargers/{charger_id}/logs/actions?limit=100")
    row = next(r for r in rows if r["action"] == action)
    return row["request"] if isinstance(row["request"], dict) else json.loads(row["request"])


def _carries(text: str, token_sha256: str) -> bool:
    return any(hashlib.sha256(m.group().encode()).hexdigest() == token_sha256 for m in _TOKENISH.finditer(text))


async def _token_hashes(edge: Any, table: str) -> list[str]:
    return [row[0] for row in await edge.journal.read(
        lambda store: store.conn.execute(f"SELECT token_sha256 FROM {table}").fetchall())]


async def test_a_charger_on_wss_uploads_its_log_over_https_and_no_log_keeps_the_token(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-2", tls=client_context(pki.root / "ca.pem")) as cp:
        cp.security.log_text = "security log line\n"
        answer = await api_call(edge, "POST", "/security/chargers/CP-2/logs", body={"log_type": "SecurityLog"})
        assert answer["outcome"] == "ok", answer
        assert (await cp.wait_event("log_upload"))["status"] == "Uploaded"
        rows = await edge.journal.read(Store.log_requests, "CP-2")
        assert rows[0]["size"] == len(cp.security.log_text)
        https_port = edge.charger_files.bound_port
        sent = await sent_request(edge, "CP-2", "GetLog")
        assert sent["log"]["remoteLocation"] == f"https://127.0.0.1:{https_port}/api/v1/uploads/{MASK}"
        kept = await _kept(edge, "CP-2")
        assert "GetLog" in kept and "remoteLocation" in kept     # the frames are there, the token is not
        [token_sha256] = await _token_hashes(edge, "log_requests")
        assert not _carries(kept, token_sha256)


async def test_a_charger_on_ws_gets_the_local_api_address(make_tls_edge, pki):
    async with make_tls_edge() as edge, sim(edge, "CP-1", tls=None) as cp:
        await api_call(edge, "POST", "/security/chargers/CP-1/logs", body={"log_type": "DiagnosticsLog"})
        assert (await cp.wait_event("log_upload"))["status"] == "Uploaded"
        sent = await sent_request(edge, "CP-1", "GetLog")
        assert sent["log"]["remoteLocation"] == f"http://127.0.0.1:{edge.api.bound_port}/api/v1/uploads/{MASK}"


async def test_the_https_port_serves_only_chargers_files_and_only_over_tls(make_tls_edge, pki):
    async with make_tls_edge() as edge:
        port = edge.charger_files.bound_port
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/api/v1/security",
                                ssl=client_context(pki.root / "ca.pem")) as api:
                assert api.status == 404          # the installer's API is not on this port
            async with http.get(f"https://127.0.0.1:{port}/api/v1/firmware/guessed",
                                ssl=client_context(pki.root / "ca.pem")) as guessed:
                assert guessed.status == 404
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/api/v1/firmware/guessed"):
                    pass
            old = client_context(pki.root / "ca.pem", versions=(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1))
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"https://127.0.0.1:{port}/api/v1/firmware/guessed", ssl=old):
                    pass


async def test_a_renewed_server_certificate_is_served_on_the_https_port_too(make_tls_edge, pki):
    async with make_tls_edge() as edge:
        port = edge.charger_files.bound_port
        first = await _serial(port, pki)
        pki.write("server", certificates.make_server_certificate(pki.ca_pem, pki.ca_key, ["127.0.0.1"],
                                                                 now=certificates.utcnow()))
        assert edge.ocpp.tls.check() is True
        assert await _serial(port, pki) != first


async def _serial(port: int, pki: Any) -> int:
    import asyncio

    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki.root / "ca.pem"))
    try:
        return x509.load_der_x509_certificate(writer.get_extra_info("ssl_object").getpeercert(True)).serial_number
    finally:
        writer.close()


_TOKENS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1,
                  max_size=64)


@given(_TOKENS, st.sampled_from(TOKEN_PATHS), st.sampled_from(["http://10.0.0.5:8180", "https://edge.local:8443"]))
def test_a_one_time_url_token_never_survives_masking(token, path, base):
    url = base + path + token
    request = {"logType": "SecurityLog", "requestId": 1, "log": {"remoteLocation": url}}
    masked = mask_payload(request)
    assert masked["log"]["remoteLocation"] == base + path + MASK
    frame = json.loads(mask_frame(json.dumps([2, "1", "GetLog", request])))
    assert frame[3]["log"]["remoteLocation"] == base + path + MASK
