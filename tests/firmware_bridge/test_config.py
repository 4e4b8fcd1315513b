"""The bridge's config file: defaults, and errors that name the key and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = '[charge_point]\nid = "WB-1"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(text, "bridge.toml")
    return error.value.problems


def test_defaults() -> None:
    config = parse_config(MINIMAL, default_state_dir="/var/lib/x")
    assert config.edge.url == "ws://127.0.0.1:9000/ocpp"
    assert (config.wallbox.protocol, config.wallbox.device, config.wallbox.baud_rate) == ("rapi", "/dev/ttyUSB0",
                                                                                            115200)
    assert (config.wallbox.max_current, config.wallbox.default_current) == (32, 6)
    assert config.metering.interval == 60
    assert config.state_path == Path("/var/lib/x/bridge.sqlite")


def test_the_example_is_valid() -> None:
    config = load_config(ROOT / "config" / "firmware-bridge.example.toml", state_dir="/tmp/x")
    assert config.charge_point.id == "WB-GARAGE"
    assert config.state_dir == "/tmp/x"


@pytest.mark.parametrize("text, expected", [
    ('[charge_point]\nid = "has space"\n', 'charge_point.id: charge point id must be 1-48 characters'),
    (MINIMAL + '[wallbox]\nprotocol = "modbus"\n',
     "wallbox.protocol: unknown wallbox protocol; known: rapi (got 'modbus')"),
    (MINIMAL + '[wallbox]\nmax_current = 100\n',
     "wallbox.max_current: Input should be less than or equal to 80 (got 100)"),
    (MINIMAL + '[wallbox]\nmax_current = 16\ndefault_current = 20\n', "default_current 20 is above max_current 16"),
    (MINIMAL + '[wallbox]\nbaud = 9600\n', "wallbox.baud: unknown key (check the spelling)"),
    (MINIMAL + '[edge]\nurl = "http://edge"\n', "edge.url: String should match pattern"),
    ('[edge]\nurl = "ws://x"\n', "charge_point: required key is missing"),
    ("[charge_point\n", "not valid TOML"),
])
def test_errors_name_key_and_value(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


def test_state_dir_from_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ttyUSB0.toml"
    path.write_text(MINIMAL)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/sitecontroller/firmware-bridge/ttyUSB0:/other")
    assert load_config(path).state_dir == "/var/lib/sitecontroller/firmware-bridge/ttyUSB0"
    monkeypatch.delenv("STATE_DIRECTORY")
    assert load_config(path).state_dir == str(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")
