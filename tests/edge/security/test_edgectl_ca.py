"""edgectl ca: an installer makes the site CA and the server certificate, and the edge serves them."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from edge.cli import main
from edge.config import parse_config
from simulator.charge_point import SimulatedChargePoint
from simulator.tls import client_context
from tests.edge.conftest import PASSWORD, running_edge, site_toml
from tests.edge.security.conftest import CHARGERS, TLS


def test_init_server_and_charger_certificates_and_show(tmp_path: Path, capsys):
    config = tmp_path / "site.toml"
    config.write_text(site_toml(tmp_path, chargers=CHARGERS).replace("[api]", TLS + "[api]", 1))
    run = ["--config", str(config), "--state-dir", str(tmp_path)]
    assert main(["ca", "init", *run]) == 0
    assert (tmp_path / "tls" / "ca.key").stat().st_mode & 0o077 == 0       # the CA key is the owner's only
    assert main(["ca", "init", *run]) == 1                                  # never replaced by accident
    assert main(["ca", "server-cert", "edge.local", "127.0.0.1", *run]) == 0
    assert main(["ca", "charger-cert", "CP-3", *run]) == 0
    capsys.readouterr()
    assert main(["ca", "show", str(tmp_path / "tls" / "server.pem"), *run]) == 0
    shown = capsys.readouterr().out
    assert "CN=edge.local" in shown and "127.0.0.1" in shown and "EC secp256r1" in shown
    assert main(["ca", "server-cert", *run]) == 1


async def test_the_files_edgectl_made_are_served_and_a_profile_3_charger_gets_in(tmp_path: Path):
    config_path = tmp_path / "site.toml"
    config_path.write_text(site_toml(tmp_path, chargers=CHARGERS).replace("[api]", TLS + "[api]", 1))
    run = ["--config", str(config_path), "--state-dir", str(tmp_path)]
    for argv in (["ca", "init"], ["ca", "server-cert", "127.0.0.1"], ["ca", "charger-cert", "CP-3"]):
        assert main([*argv, *run]) == 0
    config = parse_config(config_path.read_text(), "site.toml", state_dir=str(tmp_path))
    async with running_edge(config) as edge:
        tls = client_context(tmp_path / "tls" / "ca.pem", certificate=tmp_path / "tls" / "CP-3.pem",
                             key=tmp_path / "tls" / "CP-3.key")
        cp = SimulatedChargePoint("CP-3", f"wss://127.0.0.1:{edge.ocpp.bound_tls_port}/ocpp", tls=tls,
                                  password=PASSWORD, reconnect_delay=0.1)
        task = asyncio.create_task(cp.run())
        try:
            await cp.wait_accepted()
            assert edge.ocpp.seen["CP-3"].level == 3
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert isinstance(tls, ssl.SSLContext)
