"""edge-sim: the fleet runner, its output and its password file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from simulator.cli import describe, parse_args, read_passwords, run_fleet

from .conftest import Central

FAST_CYCLE = ["--chargers", "2", "--session-minutes", "0.005", "--idle-seconds", "0.05", "--cycles", "1",
              "--meter-interval", "0.1", "--seed", "7"]


def test_describe() -> None:
    assert describe("status", {"connector_id": 1, "status": "Charging", "error_code": "NoError"}) == \
        "connector 1 is Charging (NoError)"
    assert describe("meter_values", {"connector_id": 1, "transaction_id": 3, "current": (16.0, 0.0, 0.0),
                                     "power_w": 3680.0, "energy_wh": 12.4, "soc": None, "offered": 16.0}) == \
        "connector 1: 16.0/0.0/0.0 A, 3680 W, register 12 Wh, offered 16.0 A"
    assert describe("something_new", {"x": 1}) == "something_new {'x': 1}"
    assert describe("status", {"connector_id": 1}) == "status {'connector_id': 1}"  # missing data: shown raw


def test_read_passwords(tmp_path: Path) -> None:
    path = tmp_path / "passwords.txt"
    path.write_text("# id password\nSIM001 first secret\nfallback\n\nSIM002 two\n")
    assert read_passwords(path) == ({"SIM001": "first secret", "SIM002": "two"}, "fallback")
    assert read_passwords(None) == ({}, None)


async def test_a_fleet_runs_one_session_each(central: Central, capsys) -> None:
    await asyncio.wait_for(run_fleet(parse_args(["--url", central.url, *FAST_CYCLE])), 10)
    for charger in ("SIM001", "SIM002"):
        actions = [m.action for m in central.messages() if m.charge_point_id == charger]
        assert actions.count("StartTransaction") == actions.count("StopTransaction") == 1
        assert central.system.messages("StatusNotification", charger)[-1].payload["status"] == "Available"
    lines = capsys.readouterr().out.splitlines()
    assert any("SIM002 connector 1: transaction started for SIM002-TAG" in line for line in lines)
    assert any("SIM001 connector 1: car unplugged" in line for line in lines)


async def test_the_console_script_entry_point(central: Central, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords.txt"
    passwords.write_text("letmein\n")
    central.system.passwords = {"SIM001": "letmein", "SIM002": "letmein"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from simulator.cli import main; main()", "--url", central.url,
        "--password-file", str(passwords), *FAST_CYCLE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2])
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert out.decode().count("BootNotification Accepted") == 2
    assert len(central.messages("StopTransaction")) == 2
