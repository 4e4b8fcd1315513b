"""Brings systemd-analyze to the tests, installing it if the machine lacks it.

The unit tests need the real systemd-analyze: a unit file that only looks
right to a home-made parser is not a unit file systemd accepts. So a missing
tool is installed (Debian's `systemd` package, as root), and if that cannot
be done the tests fail, loudly, rather than skip and pass in silence.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

_APT_TIMEOUT_S = 900


@dataclass(frozen=True)
class SystemdAnalyze:
    path: str
    version: int

    def run(self, *args: str, check_rc: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, "--no-pager", *args],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=check_rc,
        )


def _find() -> str | None:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    # PATH under a service manager or sudo can be minimal; look where Debian puts it.
    for candidate in ("/usr/bin/systemd-analyze", "/bin/systemd-analyze"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", "-q", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=_APT_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def _install() -> None:
    if shutil.which("apt-get") is None:
        pytest.fail(
            "systemd-analyze is not installed and this machine has no apt-get to install it; "
            "install systemd (which ships systemd-analyze) and re-run",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            "systemd-analyze is not installed and the tests do not run as root, so they cannot "
            "install it; run `sudo apt-get install -y systemd` and re-run",
            pytrace=False,
        )
    install = ("install", "-y", "--no-install-recommends", "systemd")
    result = _apt_get(*install)
    if result.returncode != 0:
        # A fresh machine (or container) often has no package lists yet.
        update = _apt_get("update")
        if update.returncode != 0:
            pytest.fail(f"`apt-get update` failed (exit {update.returncode}):\n{update.stderr[-2000:]}", pytrace=False)
        result = _apt_get(*install)
    if result.returncode != 0:
        pytest.fail(
            f"`apt-get install systemd` failed (exit {result.returncode}):\n{result.stderr[-2000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def systemd_analyze() -> SystemdAnalyze:
    path = _find()
    if path is None:
        _install()
        path = _find()
        if path is None:
            pytest.fail("`apt-get install systemd` succeeded but systemd-analyze is still not found", pytrace=False)
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.match(r"systemd (\d+)", out)
    if match is None:
        pytest.fail(f"cannot read the systemd version from {path} --version: {out!r}", pytrace=False)
    return SystemdAnalyze(path=path, version=int(match.group(1)))

