"""Every number in the site config has a meaningful bound, named in the error.

A config that passes the loader must also let the edge build what it derives
from it (tariff book, prices, session limits, topology, timeouts): a value the
loader lets through and the core then chokes on (blocking_after_minutes = 1e10
overflowing a timedelta in pricing) stops a site. So: take a config that uses
every numeric key, put one extreme value in one place, and either the loader
refuses it naming the key, or everything derived from it still computes.
"""

from __future__ import annotations

import json
import math
import tomllib
import typing
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from edge.cdr.config import tariff_book
from edge.cdr.energy import Curve
from edge.cdr.pricing import price
from edge.cdr.watch import Running, Timeouts, due
from edge.cli import main
from edge.config import ConfigError, SiteConfig, parse_config
from edge.dlm.config import build_topology
from edge.ocpp.presence import Thresholds, presence
from tests.edge.conftest import PASSWORD_HASH

# Every numeric key of every table, each with a valid value (meters over TCP and RTU and a
# custom map; every tariff type; an uplink that is on).
FULL = f"""
[site]
id = "bounds"
timezone = "Europe/Berlin"
[ocpp]
port = 9000
heartbeat_interval = 300
response_timeout = 30
max_frame_bytes = 262144
max_messages_per_second = 20
message_burst = 200
[ocpp.tls]
reload_every = 30
https_port = 8443
[connection]
temporarily_unavailable_after = 120
long_term_unavailable_after = 300
[recovery]
after_minutes = 10
step_minutes = 10
daily_cap = 3
check_every = 30
[api]
port = 8180
[web]
session_minutes = 720
[journal]
communication_log_frames_per_charger = 5000
communication_log_frame_chars = 4096
[uplink]
enabled = true
host = "mqtt.example.net"
port = 8883
keepalive = 60
session_expiry = 604800
disk_budget_mb = 200
telemetry_interval = 60
max_inflight = 4
receipt_timeout = 15
reconnect_min_delay = 1
reconnect_max_delay = 120
[load_management]
margin = 1.0
rotate_after = 900
failsafe_after = 3
hysteresis = 1.0
change_interval = 5
follow_time = 5
tx_profile_duration = 120
stack_level = 1
over_limit_tolerance = 1.0
series_interval = 60
series_keep_days = 30
tick = 1.0
meter_values_interval = 5
full_pause_after = 60
[charge_records]
vat_percent = 19
nominal_voltage = 230
[charge_records.plausibility]
min_energy_kwh = 0.2
max_energy_kwh = 5000
min_duration_minutes = 1
max_duration_days = 14
power_tolerance_percent = 10
future_tolerance_seconds = 300
[session_timeouts]
fail_start_after = 60
finish_after_inactivity = 120
reboot_grace = 60
finish_after_offline = 10080

[[meters]]
id = "grid-meter"
model = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = 502
unit = 1
period = 1.0
timeout = 0.5
retries = 1
current_max = 1000
[[meters]]
id = "bus-meter"
model = "custom"
transport = "rtu"
device = "/dev/ttyUSB0"
baudrate = 9600
stopbits = 1
bytesize = 8
unit = 2
registers = [{{ measures = "current_l1", address = 6, function = 4, type = "float32", scale = 1.0 }},
             {{ measures = "voltage_l1", address = 0, function = 4, type = "float32" }},
             {{ measures = "power_l1", address = 12, function = 4, type = "float32" }}]

[[circuits]]
id = "grid"
limit = 63
meter = "grid-meter"
failsafe_load = 40
[[circuits]]
id = "garage"
parent = "grid"
limit = 32

[[chargers]]
id = "CP-1"
password_hash = "{PASSWORD_HASH}"
security_profile = 2
connectors = 2
max_current = 32
min_current = 6
phases = 3
circuit = "garage"
evses = [{{ connector = 2, max_current = 16, min_current = 8, phases = 1, phase = "L2" }}]
[[chargers]]
id = "CP-2"
password_hash = "{PASSWORD_HASH}"

[[user_groups]]
id = "residents"
tariff = "residents"
charge_groups = ["garage"]
departure = "17:30"
energy_kwh = 20
[[charge_groups]]
id = "garage"
policy = "private"
evses = [{{ charger = "CP-1", connector = 1 }}]
[[tokens]]
id_tag = "TAG-1"
user_group = "residents"

[[tariffs]]
id = "public"
type = "duration-energy"
connection_fee = 1
price_per_kwh = 0.39
price_per_minute = 0.01
blocking_fee_per_minute = 0.10
blocking_after_minutes = 240
max_minutes = 720
max_kwh = 80
min_price = 1
max_price = 60
time_step_minutes = 1
energy_step_kwh = 0.1
idle_fee_per_minute = 0.10
idle_grace_minutes = 30
auto_stop_price = 50
[[tariffs]]
id = "residents"
type = "duration-energy-tod"
price_per_kwh = 0.30
price_per_minute = 0
night_price_per_kwh = 0.20
night_price_per_minute = 0
day_starts = "06:00"
night_starts = "22:00"
[[tariffs]]
id = "flat"
type = "flat"
price_per_session = 5
ad_hoc = true
[[tariffs]]
id = "levels"
type = "power-levels"
power_levels = [{{ max_kw = 11, price_per_minute = 0.05 }}, {{ max_kw = 22, price_per_minute = 0.08 }}]
free_vend = true
[[tariff_groups]]
id = "site"
base = "public"
tariffs = ["residents", "flat", "levels"]
evses = ["CP-2", {{ charger = "CP-1", connector = 2 }}]
"""

EXTREMES = [1e308, -1e308, 2**70, -(2**70), 2**63, math.nan, math.inf, -math.inf, 1e-300]
NUMBER = (int, float)


def numeric_leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every number in a TOML document (bools are not numbers here)."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in numeric_leaves(value, (*path, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in numeric_leaves(value, (*path, i))]
    return [path] if isinstance(node, NUMBER) and not isinstance(node, bool) else []


def replaced(document: dict, path: tuple, value: Any) -> dict:
    copy = json.loads(json.dumps(document, default=str))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(document: dict) -> str:
    """Each top-level key as one line (tables inline): what tomllib reads back exactly."""
    return "\n".join(f"{key} = {toml_value(value)}" for key, value in document.items()) + "\n"


BASE = tomllib.loads(FULL)
LEAVES = numeric_leaves(BASE)


def derive(config: SiteConfig) -> None:
    """What the edge computes from its config (edge/app.py's _build, the session watch,
    pricing): every piece must be computable for every config the loader accepts."""
    tz = ZoneInfo(config.site.timezone)
    tariff_book(config.tariffs, config.tariff_groups)
    pricing = config.charge_records.pricing(tz)
    timeouts = Timeouts.of(config.session_timeouts)
    build_topology(config)
    thresholds = Thresholds(config.connection.temporarily_unavailable_after,
                            config.connection.long_term_unavailable_after)
    presence(60.0, thresholds)
    for charger in config.chargers:
        for connector in range(1, charger.connectors + 1):
            config.charge_records.evse_max_power_w(charger, connector)
    for meter in config.meters:
        meter.register_map()
    assert config.uplink.disk_budget_bytes > 0
    start = datetime(2026, 6, 1, 6, 0, tzinfo=timezone.utc)
    stop = start + timedelta(hours=30)
    curve = Curve(((start, Decimal(0)), (start + timedelta(hours=1), Decimal(11_000)), (stop, Decimal(22_000))))
    run = Running(1, "CP-1", 1, "TAG-1", None, start, 0, stop, 22_000)
    for tariff in (t.to_tariff() for t in config.tariffs):
        result = price(tariff, curve, Decimal("0.73"), tz, pricing.currency, pricing.vat_percent)
        assert result.gross >= 0
        due(run, tariff, stop, timeouts, None, None)


def test_the_full_config_is_valid_and_uses_every_numeric_key():
    derive(parse_config(FULL, "full.toml"))
    present = {path[-1] if isinstance(path[-1], str) else path[-2] for path in LEAVES}
    assert numeric_fields(SiteConfig) <= present, numeric_fields(SiteConfig) - present


def numeric_fields(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """The names of every numeric field of a config table and the tables inside it."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, field in model.model_fields.items():
        if name == "state_dir":
            continue
        for kind in flatten(field.annotation):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= numeric_fields(kind, seen)
            elif kind in (int, float, Decimal) or isinstance(kind, (int, float)) and not isinstance(kind, bool):
                names.add(name)
    return names


def flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return flatten(args[0])
    return [kind for arg in args for kind in flatten(arg)]


def key_named(problems: list[str], path: tuple) -> bool:
    """A problem names the key: its path as the loader writes it, e.g.
    'tariffs[0] (id "public").blocking_after_minutes' or 'meters[1] ... registers'."""
    keys = [step for step in path if isinstance(step, str)]
    return any(line.startswith(keys[0]) and any(k in line for k in keys[1:] or keys) for line in problems)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(LEAVES), value=st.sampled_from(EXTREMES))
def test_an_extreme_number_anywhere_is_refused_by_name_or_harmless(path, value):
    text = to_toml(replaced(BASE, path, value))
    try:
        config = parse_config(text, "site.toml")
    except ConfigError as exc:
        assert key_named(exc.problems, path), (path, value, exc.problems)
        assert all(len(line) < 400 for line in exc.problems), exc.problems
        return
    # No number in a site config means anything near 1e18: an upper bound is missing.
    assert math.isfinite(value) and abs(value) < 1e18, f"{path} = {value!r} was accepted"
    derive(config)


@pytest.mark.parametrize("key, value, problem", [
    ("blocking_after_minutes", "1e10", "Input should be less than or equal to 44640 (got 10000000000.0)"),
    ("max_minutes", "1e10", "Input should be less than or equal to 44640 (got 10000000000.0)"),
    ("max_kwh", "nan", "Input should be a finite number (got nan)"),
])
def test_config_check_names_key_value_and_bound(tmp_path, capsys, key, value, problem):
    site = tmp_path / "site.toml"
    site.write_text(FULL.replace(f"\n{key} = ", f"\n{key} = {value}\n#", 1))
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert f'site.toml: tariffs[0] (id "public").{key}: {problem}' in err, err


def test_nan_and_infinity_are_refused_everywhere():
    for path in LEAVES:
        for value in (math.nan, math.inf):
            with pytest.raises(ConfigError):
                parse_config(to_toml(replaced(BASE, path, value)), "site.toml")

