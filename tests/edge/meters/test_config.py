"""MeterConfig: defaults, transports, custom maps, and errors an installer can act on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.meters.config import MeterConfig, bus_conflicts

TCP = {"id": "grid", "model": "sdm630", "transport": "tcp", "host": "192.168.1.50"}
RTU = {"id": "grid", "model": "sdm630", "transport": "rtu", "device": "/dev/ttyUSB0"}
CUSTOM_ROWS = [
    {"measures": f"{kind}_l{n}", "address": 2 * i, "function": 4, "type": "float32"}
    for i, (kind, n) in enumerate((k, n) for k in ("current", "voltage", "power") for n in (1, 2, 3))
]


def test_defaults():
    tcp = MeterConfig.model_validate(TCP)
    assert (tcp.port, tcp.unit, tcp.period, tcp.timeout, tcp.retries, tcp.current_max) == (502, 1, 1.0, 0.5, 1, 1000)
    rtu = MeterConfig.model_validate(RTU)
    assert (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize) == (9600, "N", 1, 8)
    assert rtu.register_map().name == "sdm630"


def test_frozen():
    config = MeterConfig.model_validate(TCP)
    with pytest.raises(ValidationError):
        config.period = 5  # type: ignore[misc]


def test_custom_map():
    config = MeterConfig.model_validate({**TCP, "model": "custom", "registers": CUSTOM_ROWS})
    rmap = config.register_map()
    assert rmap.phases == 3 and len(rmap.registers) == 9


def _problem(data: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        MeterConfig.model_validate(data)
    return "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors())


@pytest.mark.parametrize("data, where, text", [
    ({**TCP, "model": "sdm999"}, "model", "unknown meter model; one of abb_b23"),
    ({**TCP, "host": "not a host!"}, "host", "IP address or host name"),
    ({**TCP, "port": 0}, "port", "TCP port 1..65535"),
    ({**TCP, "period": 0.1}, "period", "0.2..60 seconds"),
    ({**TCP, "timeout": 0}, "timeout", "0.05..10"),
    ({**TCP, "retries": 9}, "retries", "0..5"),
    ({**TCP, "current_max": -1}, "current_max", "above 0 A"),
    ({**TCP, "hearbeat": 1}, "hearbeat", "Extra inputs are not permitted"),
    ({**RTU, "device": "ttyUSB0"}, "device", "/dev/ttyUSB0"),
    ({**RTU, "baudrate": 9601}, "baudrate", "9600"),
    ({**RTU, "parity": "X"}, "parity", "'N', 'E' or 'O'"),
    ({**RTU, "unit": 0}, "unit", "1..247"),
    ({**RTU, "unit": 248}, "unit", "front panel"),
    ({**TCP, "unit": 256}, "unit", "0..255"),
    ({**RTU, "host": "10.0.0.1"}, "", 'only apply to transport = "tcp"'),
    ({**TCP, "baudrate": 19200}, "", 'baudrate only apply to transport = "rtu"'),
    ({k: v for k, v in TCP.items() if k != "host"}, "", "needs host"),
    ({k: v for k, v in RTU.items() if k != "device"}, "", "needs device"),
    ({**TCP, "transport": "udp"}, "transport", "'tcp' or 'rtu'"),
    ({**TCP, "model": "custom"}, "", "needs a registers list"),
    ({**TCP, "registers": CUSTOM_ROWS}, "registers", 'only be given with model = "custom"'),
    ({**TCP, "model": "custom", "registers": CUSTOM_ROWS[:-1]}, "registers", "missing power_l3"),
    ({**TCP, "model": "custom", "registers": [{**CUSTOM_ROWS[0], "function": 16}, *CUSTOM_ROWS[1:]]},
     "registers.0.function", "function must be 3 (holding registers) or 4"),
    ({**TCP, "id": "grid meter"}, "id", "1-48 characters"),
])
def test_errors_name_the_problem(data, where, text):
    problem = _problem(data)
    assert text in problem
    assert problem.startswith(where)


def test_tcp_unit_zero_and_255_are_allowed():
    assert MeterConfig.model_validate({**TCP, "unit": 255}).unit == 255
    assert MeterConfig.model_validate({**TCP, "unit": 0}).unit == 0


def test_ipv6_and_host_names():
    assert MeterConfig.model_validate({**TCP, "host": "fd00::12"}).host == "fd00::12"
    assert MeterConfig.model_validate({**TCP, "host": "meter-1.local"}).host == "meter-1.local"


def test_bus_conflicts():
    a = MeterConfig.model_validate({**RTU, "id": "a", "unit": 1})
    b = MeterConfig.model_validate({**RTU, "id": "b", "unit": 1, "baudrate": 19200})
    c = MeterConfig.model_validate({**TCP, "id": "a"})
    problems = bus_conflicts([a, b, c])
    assert any("share unit 1" in p for p in problems)
    assert any("differ in baudrate" in p for p in problems)
    assert any("'a' appears more than once" in p for p in problems)
    assert bus_conflicts([a, MeterConfig.model_validate({**RTU, "id": "b", "unit": 2})]) == []


def test_the_examples_in_the_installer_docs_are_valid():
    text = (Path(__file__).parents[3] / "docs" / "meters.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[[meters]]" in b]
    assert len(blocks) >= 3
    for block in blocks:
        meters = [MeterConfig.model_validate(m) for m in tomllib.loads(block)["meters"]]
        assert bus_conflicts(meters) == []
