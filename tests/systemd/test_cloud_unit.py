"""systemd/cloud.service: systemd accepts it, it is locked down, and it runs the cloud as documented."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import SystemdAnalyze

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "cloud.service"
MAX_EXPOSURE = 2.0


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at a stub: verify refuses a binary that is not there."""
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={stub}", UNIT.read_text(), flags=re.MULTILINE)
    assert count == 1
    (tmp_path / "unit").mkdir()
    copy = tmp_path / "unit" / UNIT.name
    copy.write_text(text)
    return copy


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_systemd_analyze_verify_accepts_it(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    result = systemd_analyze.run("verify", str(checkable_unit))
    assert [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line] == []
    assert result.returncode == 0, result.stdout + result.stderr


def test_security_exposure_is_low(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    if systemd_analyze.version < 250:
        pytest.fail(f"systemd {systemd_analyze.version} cannot judge a unit file offline (needs 250+)")
    result = systemd_analyze.run("security", "--offline=yes", str(checkable_unit))
    match = re.search(rf"Overall exposure level for {re.escape(UNIT.name)}: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_runs_cloud_serve_with_sqlite_in_its_state_directory_by_default() -> None:
    unit = settings()
    assert shlex.split(unit["ExecStart"][0])[1:] == ["serve"]
    assert unit["Type"] == ["notify"] and unit["WatchdogSec"] == ["30"] and unit["Restart"] == ["always"]
    environment = dict(item.split("=", 1) for value in unit["Environment"] for item in shlex.split(value))
    assert environment["DATABASE_URL"] == f"sqlite:////var/lib/{unit['StateDirectory'][0]}/cloud.db"
    # optional (leading '-') and after Environment=, so its DATABASE_URL wins
    assert unit["EnvironmentFile"] == [f"-/etc/{unit['ConfigurationDirectory'][0]}/cloud.env"]
