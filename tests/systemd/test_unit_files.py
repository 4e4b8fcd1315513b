"""systemd/edge.service: systemd accepts it, and it says what we mean.

systemd-analyze is the judge of syntax and hardening (it is what PID 1
will read); the small parser below only reads back the settings whose
values matter to the product, so a careless edit fails here with a reason.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edge.lifecycle import STOP_GRACE_S

if TYPE_CHECKING:
    from .conftest import SystemdAnalyze

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge.service"
UNIT_NAME = UNIT.name

# `systemd-analyze security` exposure, 0 (locked down) to 10 (unprotected);
# the unit scores 1.5 on systemd 252. Raise this only with a reason.
MAX_EXPOSURE = 2.0

# The checks of `systemd-analyze security` this unit fails on purpose, and why.
ACCEPTED_EXPOSURES = {
    "RootDirectoryOrRootImage": "runs from the host's Python venv in /opt; a root image is not worth it on a Pi",
    "SupplementaryGroups": "dialout, for the RS-485 meters and serial wallboxes",
    "PrivateDevices": "would hide the serial ports; DevicePolicy=closed + DeviceAllow instead",
    "DeviceAllow": "the serial drivers (and rtc read-only, added by ProtectClock)",
    "PrivateUsers": "would map the dialout group to nobody, so no serial ports",
    "ProcSubset": "box health figures come from /proc/meminfo, /proc/loadavg, /proc/uptime",
    "RestrictAddressFamilies_AF_UNIX": "journald and sd_notify",
    "RestrictAddressFamilies_AF_INET_INET6": "chargers, Modbus TCP meters, MQTT uplink",
    "PrivateNetwork": "it is a network service",
    "IPAddressDeny": "chargers on any LAN, the broker anywhere: no fixed allow list",
    "UMask": "0027: members of group edge (an operator) may read the journal; others nothing",
}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value assigned, in order (keys may repeat).

    An empty assignment (``CapabilityBoundingSet=``) is kept as "".
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


@pytest.fixture(scope="module")
def service(unit: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    return unit["Service"]


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values is not None, f"{key}= is missing"
    assert len(values) == 1, f"{key}= is set {len(values)} times: {values}"
    return values[0]


def _checkable_copy(source: Path, name: str, tmp_path: Path) -> Path:
    """The unit as `name`, with ExecStart pointed at a stub, so verify can check it here.

    verify fails a unit whose ExecStart binary does not exist; the real path
    (/opt/sitecontroller/venv/bin/...) exists only on an installed box.
    Everything else, arguments included, is the file as shipped.
    """
    stub = tmp_path / "bin" / "stub"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={stub}", source.read_text(), flags=re.MULTILINE)
    assert count == 1
    unit_dir = tmp_path / "unit"
    unit_dir.mkdir(exist_ok=True)
    copy = unit_dir / name
    copy.write_text(text)
    return copy


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    return _checkable_copy(UNIT, UNIT_NAME, tmp_path)


def complaints_about_our_unit(result) -> list[str]:
    # verify also loads the units ours depends on (network-online.target, ...)
    # and may grumble about the host's own units; only ours is our business.
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if UNIT_NAME in line]


# --- systemd's own judgement -------------------------------------------------


def test_systemd_analyze_verify_accepts_the_unit(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    result = systemd_analyze.run("verify", str(checkable_unit))
    assert complaints_about_our_unit(result) == []
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_complaints_about_the_unit_are_caught(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    # The filter above must not be blind: a misspelt key in our unit is a
    # warning (exit 0) that names our file, and must be seen.
    checkable_unit.write_text(checkable_unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    result = systemd_analyze.run("verify", str(checkable_unit))
    assert any("ProtectHomes" in line for line in complaints_about_our_unit(result)), result.stderr


def _security(systemd_analyze: SystemdAnalyze, unit: Path, *args: str):
    if systemd_analyze.version < 250:
        pytest.fail(
            f"systemd {systemd_analyze.version} cannot judge a unit file offline "
            "(`systemd-analyze security --offline=yes` needs systemd 250+, Debian 12)",
            pytrace=False,
        )
    return systemd_analyze.run("security", "--offline=yes", *args, str(unit))


def _exposure(systemd_analyze: SystemdAnalyze, unit: Path) -> float:
    result = _security(systemd_analyze, unit)
    assert result.returncode == 0, result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+) (\w+)", result.stdout)
    assert match, result.stdout[-2000:]
    exposure, verdict = float(match.group(1)), match.group(2)
    assert verdict == "OK", result.stdout
    return exposure


def test_security_exposure_is_low(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    exposure = _exposure(systemd_analyze, checkable_unit)
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure}, over {MAX_EXPOSURE}"


def _failed_checks(systemd_analyze: SystemdAnalyze, unit: Path) -> set[str]:
    result = _security(systemd_analyze, unit, "--json=short")
    assert result.returncode == 0, result.stderr
    return {check["json_field"] for check in json.loads(result.stdout) if not check["set"]}


def test_only_accepted_exposures(systemd_analyze: SystemdAnalyze, checkable_unit: Path) -> None:
    unexpected = _failed_checks(systemd_analyze, checkable_unit) - set(ACCEPTED_EXPOSURES)
    assert unexpected == set(), "new exposures: harden the unit, or accept them with a reason"


# --- the settings the product depends on --------------------------------------


def test_lifecycle_is_notify_with_watchdog(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    # Only the edge's own pid may report readiness or feed the watchdog.
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "Restart") == "always"
    assert one(service, "RestartSec") == "2"
    assert one(service, "WatchdogSec") == "30"
    # SIGTERM must leave time to commit the journal and close charger sockets, and the edge
    # gives itself STOP_GRACE_S before it exits at once: systemd's SIGKILL must come later.
    assert STOP_GRACE_S + 5 <= int(one(service, "TimeoutStopSec")) <= 90


def test_never_stops_restarting(unit: dict[str, dict[str, list[str]]]) -> None:
    assert one(unit["Unit"], "StartLimitIntervalSec") == "0"


def test_exec_start_reads_the_config_from_the_configuration_directory(service: dict[str, list[str]]) -> None:
    argv = shlex.split(one(service, "ExecStart"))
    assert argv == [
        "/opt/sitecontroller/venv/bin/edgectl",
        "run",
        "--config",
        "/etc/sitecontroller/site.toml",
    ]
    assert Path(argv[3]).parent == Path("/etc") / one(service, "ConfigurationDirectory")


def test_runs_as_the_edge_user_with_serial_access(service: dict[str, list[str]]) -> None:
    assert one(service, "User") == "edge"
    assert one(service, "Group") == "edge"
    assert one(service, "DynamicUser") == "no"
    assert one(service, "SupplementaryGroups").split() == ["dialout"]
    # PrivateUsers= would map dialout to nobody and lose the serial ports.
    assert service.get("PrivateUsers", ["no"]) == ["no"]


def test_directories(service: dict[str, list[str]]) -> None:
    # The journal lives in /var/lib/sitecontroller, the one writable place.
    assert one(service, "StateDirectory") == "sitecontroller"
    assert one(service, "ConfigurationDirectory") == "sitecontroller"
    assert one(service, "RuntimeDirectory") == "sitecontroller"
    assert one(service, "UMask") == "0027"


def test_environment_and_limits(service: dict[str, list[str]]) -> None:
    environment = [item for value in service["Environment"] for item in shlex.split(value)]
    assert "PYTHONUNBUFFERED=1" in environment
    assert one(service, "LimitNOFILE") == "65536"


def test_hardening(service: dict[str, list[str]]) -> None:
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert one(service, key) == "yes", key
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "SystemCallArchitectures") == "native"
    # Empty: no capabilities at all, not even the ones root would bring.
    assert one(service, "CapabilityBoundingSet") == ""
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert one(service, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]


def test_devices_are_closed_but_for_the_serial_ports(service: dict[str, list[str]]) -> None:
    assert one(service, "PrivateDevices") == "no"
    assert one(service, "DevicePolicy") == "closed"
    allowed = {tuple(value.split()) for value in service["DeviceAllow"]}
    assert ("char-ttyUSB", "rw") in allowed
    assert ("char-ttyAMA", "rw") in allowed
    assert all(group.startswith("char-tty") for group, _ in allowed), allowed


def test_enabled_for_multi_user(unit: dict[str, dict[str, list[str]]]) -> None:
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


# --- the firmware bridge's template unit (one instance per serial wallbox) -----

BRIDGE_UNIT = UNIT.parent / "firmware-bridge@.service"
BRIDGE_INSTANCE = "firmware-bridge@ttyUSB0.service"
# Where the bridge differs from the edge in `systemd-analyze security`, and why.
BRIDGE_ACCEPTED_EXPOSURES = {
    **{field: why for field, why in ACCEPTED_EXPOSURES.items() if field not in ("ProcSubset", "IPAddressDeny")},
    "IPAddressDeny": "loopback only, to the edge on this box; the check still counts an allow list",
}


@pytest.fixture(scope="module")
def bridge_service() -> dict[str, list[str]]:
    return parse_unit(BRIDGE_UNIT.read_text())["Service"]


@pytest.mark.parametrize("name", [BRIDGE_UNIT.name, BRIDGE_INSTANCE])
def test_bridge_unit_verifies_as_template_and_instance(systemd_analyze: SystemdAnalyze, tmp_path: Path,
                                                       name: str) -> None:
    result = systemd_analyze.run("verify", str(_checkable_copy(BRIDGE_UNIT, name, tmp_path)))
    assert [line for line in (result.stdout + result.stderr).splitlines() if "firmware-bridge@" in line] == []
    assert result.returncode == 0, result.stdout + result.stderr


def test_bridge_exposure_is_no_higher_than_the_edges(systemd_analyze: SystemdAnalyze, tmp_path: Path,
                                                     checkable_unit: Path) -> None:
    bridge = _checkable_copy(BRIDGE_UNIT, BRIDGE_INSTANCE, tmp_path)
    assert _exposure(systemd_analyze, bridge) <= _exposure(systemd_analyze, checkable_unit)
    unexpected = _failed_checks(systemd_analyze, bridge) - set(BRIDGE_ACCEPTED_EXPOSURES)
    assert unexpected == set(), "new exposures: harden the unit, or accept them with a reason"


def test_bridge_has_the_edges_hardening(service: dict[str, list[str]], bridge_service: dict[str, list[str]]) -> None:
    for key in ("NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "ProtectHome",
                "PrivateTmp", "PrivateMounts", "PrivateDevices", "DevicePolicy", "DeviceAllow",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "ProtectClock", "ProtectHostname", "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces",
                "RestrictRealtime", "RestrictSUIDSGID", "RemoveIPC", "LockPersonality", "MemoryDenyWriteExecute",
                "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "User", "Group",
                "SupplementaryGroups", "UMask", "NotifyAccess", "Type", "Restart", "WatchdogSec", "KillMode"):
        assert bridge_service.get(key) == service.get(key), key
    # Tighter than the edge: loopback only, and no /proc beyond its own.
    assert bridge_service["IPAddressAllow"] == ["localhost"] and bridge_service["IPAddressDeny"] == ["any"]
    assert one(bridge_service, "ProcSubset") == "pid"


def test_bridge_instance_names_its_config_and_state(bridge_service: dict[str, list[str]]) -> None:
    argv = shlex.split(one(bridge_service, "ExecStart"))
    assert argv == ["/opt/sitecontroller/venv/bin/firmware-bridge", "--config",
                    "/etc/sitecontroller/firmware-bridge/%i.toml"]
    assert Path(argv[2]).parent == Path("/etc") / one(bridge_service, "ConfigurationDirectory")
    assert one(bridge_service, "StateDirectory") == "sitecontroller/firmware-bridge/%i"
    assert one(bridge_service, "WorkingDirectory") == "/var/lib/" + one(bridge_service, "StateDirectory")
    # A pulled-out adapter must not stop the bridge: it reports the wallbox Faulted.
    assert "BindsTo" not in parse_unit(BRIDGE_UNIT.read_text())["Unit"]
