"""Configuration keys and the local authorization list, without a connection."""

from __future__ import annotations

import pytest

from simulator.configuration import DEFAULT_SAMPLED, Configuration, default_keys
from simulator.local_auth import LocalAuthList


@pytest.fixture
def config() -> Configuration:
    return Configuration(default_keys(connectors=2, heartbeat_interval=60, meter_interval=10))


def test_get_all_keys(config: Configuration) -> None:
    known, unknown = config.get()
    values = {k["key"]: (k["value"], k["readonly"]) for k in known}
    assert unknown == []
    assert values["NumberOfConnectors"] == ("2", True)
    assert values["HeartbeatInterval"] == ("60", False)
    assert values["MeterValueSampleInterval"] == ("10", False)
    assert values["LocalAuthListMaxLength"] == ("1000", True)
    assert values["SendLocalListMaxLength"] == ("100", True)
    assert values["ChargingScheduleAllowedChargingRateUnit"] == ("Current", True)
    assert {"ConnectionTimeOut", "LocalAuthListEnabled", "ChargeProfileMaxStackLevel",
            "MeterValuesSampledData"} <= values.keys()


def test_get_some_keys_reports_unknown_ones(config: Configuration) -> None:
    known, unknown = config.get(["heartbeatinterval", "NoSuchKey"])
    assert known == [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
    assert unknown == ["NoSuchKey"]


@pytest.mark.parametrize("key, value, status, stored", [
    ("HeartbeatInterval", "30", "Accepted", "30"),
    ("MeterValueSampleInterval", "0.5", "Accepted", "0.5"),
    ("HeartbeatInterval", "soon", "Rejected", "60"),
    ("HeartbeatInterval", "-1", "Rejected", "60"),
    ("ConnectionTimeOut", "1.5", "Rejected", "60"),  # an integer key
    ("LocalAuthListEnabled", "FALSE", "Accepted", "FALSE"),
    ("LocalAuthListEnabled", "maybe", "Rejected", "true"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,SoC", "Accepted", "Energy.Active.Import.Register,SoC"),
    ("MeterValuesSampledData", "Energy,Mood", "Rejected", DEFAULT_SAMPLED),
    ("NumberOfConnectors", "5", "Rejected", "2"),  # read-only
    ("NoSuchKey", "1", "NotSupported", None),
])
def test_change(config: Configuration, key: str, value: str, status: str, stored: str | None) -> None:
    assert config.change(key, value) == status
    known, _ = config.get([key])
    assert (known[0]["value"] if known else None) == stored


def test_typed_reads(config: Configuration) -> None:
    assert config.number("MeterValueSampleInterval") == 10.0
    assert config.flag("LocalAuthorizeOffline") is True
    assert "Current.Import" in config.items("MeterValuesSampledData")


def entry(tag: str, status: str | None = "Accepted") -> dict:
    return {"id_tag": tag} if status is None else {"id_tag": tag, "id_tag_info": {"status": status}}


@pytest.mark.parametrize("updates, status, version, entries", [
    ([(1, "Full", [entry("A"), entry("B", "Blocked")])], "Accepted", 1, {"A": "Accepted", "B": "Blocked"}),
    ([(1, "Full", [entry("A")]), (2, "Full", [entry("C")])], "Accepted", 2, {"C": "Accepted"}),
    ([(1, "Full", [entry("A"), entry("B")]), (2, "Differential", [entry("B", None), entry("C", "Expired")])],
     "Accepted", 2, {"A": "Accepted", "C": "Expired"}),
    ([(3, "Full", [entry("A")]), (3, "Differential", [entry("C")])], "VersionMismatch", 3, {"A": "Accepted"}),
    ([(1, "Full", [entry(f"T{i}") for i in range(4)])], "Failed", 0, {}),  # more than SendLocalListMaxLength
    ([(1, "Full", [entry("A"), entry("B")]), (2, "Differential", [entry("C"), entry("D")])], "Failed", 1,
     {"A": "Accepted", "B": "Accepted"}),  # more than LocalAuthListMaxLength in total
])
def test_send_local_list(updates: list, status: str, version: int, entries: dict) -> None:
    local = LocalAuthList()
    results = [local.send(v, kind, items, max_send=3, max_total=3) for v, kind, items in updates]
    assert (results[-1], local.version, local.entries) == (status, version, entries)


def test_list_before_cache() -> None:
    local = LocalAuthList()
    local.send(1, "Full", [entry("A", "Blocked")], max_send=10, max_total=10)
    local.remember("A", "Accepted")
    local.remember("B", "Accepted")
    assert local.lookup("A", use_list=True, use_cache=True) == "Blocked"
    assert local.lookup("A", use_list=False, use_cache=True) == "Accepted"
    assert local.lookup("B", use_list=True, use_cache=False) is None
    local.clear_cache()
    assert local.lookup("B", use_list=True, use_cache=True) is None
