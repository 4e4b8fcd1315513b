"""The uplink's status in the local API and in `edgectl uplink`."""

from __future__ import annotations

import asyncio
import json

from contract.v1 import Down
from edge.cli import main
from tests.edge.conftest import api_call, site_toml
from tests.edge.uplink.conftest import SITE, drained, eventually, uplink_toml
from tests.edge.uplink.helpers import make_cdrs


async def test_status_in_the_api_and_edgectl(make_uplinked_edge, cloud, live_broker, tmp_path, capsys):
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        await make_cdrs(edge, 3)
        await drained(edge)
        cloud.send(Down(site=SITE, kind="auth", id="bad-auth", version=1, document={"tokens": "nope"}))
        await eventually(lambda: cloud.acks(), what="the rejection")
        body = await api_call(edge, "GET", "/uplink")
        assert body["connected"] and body["broker"] == f"127.0.0.1:{live_broker.port}" and body["protocol"] == "5"
        assert body["streams"]["cdr"] == {"backlog": 0, "backlog_bytes": 0, "oldest_at": None, "last_seq": 3,
                                          "delivered": 3, "last_delivered_at": body["streams"]["cdr"]
                                          ["last_delivered_at"], "dropped": 0, "refused": None,
                                          "unconfirmed": 0, "held": 0}
        assert body["downlink"]["recent"][0]["status"] == "rejected"
        assert body["downlink"]["outcomes"] == {"rejected": 1}

        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path, extra=uplink_toml(live_broker)).replace("[api]\nport = 0",
                                                                       f"[api]\nport = {edge.api.bound_port}"))
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["uplink", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "connected since" in out and "STREAM" in out and "bad-auth" in out
        assert await asyncio.to_thread(main, ["uplink", "--json", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)]) == 0
        assert json.loads(capsys.readouterr().out)["streams"]["cdr"]["delivered"] == 3


async def test_status_when_the_uplink_is_off(make_edge):
    async with make_edge() as edge:
        assert (await api_call(edge, "GET", "/uplink"))["enabled"] is False


async def test_a_missing_password_file_is_reported_and_charging_goes_on(make_uplinked_edge):
    async with make_uplinked_edge(password_file="no-such-file") as edge:
        await eventually(lambda: edge.uplink.last_error, what="the error")
        assert "No such file" in edge.uplink.last_error and "no-such-file" in edge.uplink.last_error
        assert (await api_call(edge, "GET", "/health"))["healthy"] is True
