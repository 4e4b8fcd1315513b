"""`python -m firmware_bridge` as systemd runs it: a real process, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from firmware_bridge.cli import main
from tests.firmware_bridge.conftest import bridge_toml

ROOT = Path(__file__).resolve().parents[2]


def test_check_prints_the_config_without_the_password(capsys) -> None:
    assert main(["--config", str(ROOT / "config" / "firmware-bridge.example.toml"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "WB-GARAGE" in out and "change-me" not in out and "(set)" in out


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[charge_point]\nid = "WB-1"\n[wallbox]\nbaud_rate = 12\n')
    assert main(["--config", str(path)]) == 2
    assert "wallbox.baud_rate" in capsys.readouterr().err


async def test_the_process_runs_and_stops_on_sigterm(rig, tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(bridge_toml(rig.bridge_path, tmp_path / "state"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_bridge", "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        while "wallbox connected" not in "".join(lines):
            line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
            assert line, "".join(lines)
            lines.append(line)
        # The bridge drives the wallbox: without a transaction it is put to sleep.
        await rig.firmware.wait_for(lambda: rig.firmware.mode == "sleeping")
        process.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(process.communicate(), 10))[0].decode()
        assert process.returncode == 0, "".join(lines) + rest
        assert "bridge stopped" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (tmp_path / "state" / "bridge.sqlite").exists()


def test_an_unwritable_state_directory_is_named(tmp_path: Path, capsys, monkeypatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # main() sets up logging for a process
    monkeypatch.setattr(root, "level", root.level)
    config = tmp_path / "bridge.toml"
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config.write_text(bridge_toml(tmp_path / "ttyNONE", blocker / "state"))
    assert main(["--config", str(config)]) == 1
    assert "not-a-directory" in capsys.readouterr().err
