"""The bridge's config: one small TOML file per wallbox.

Validated with pydantic like the site config, and reported the same way
(edge.config's messages: "<file>: <key>: <problem> (got <value>)").
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from edge.config import CHARGER_ID, ConfigError, describe_errors, read_config_text
from edge.config_base import Strict as _Strict
from firmware_bridge.drivers import names as driver_names

__all__ = ["BridgeConfig", "ConfigError", "load_config", "parse_config"]

Amps = Annotated[float, Field(ge=6, le=80)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class ChargePointSection(_Strict):
    id: str
    # What the BootNotification says; by default what the driver knows of the wallbox.
    vendor: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=20)] | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not CHARGER_ID.match(value):
            raise ValueError("charge point id must be 1-48 characters of A-Z a-z 0-9 . _ : -")
        return value


class EdgeSection(_Strict):
    url: Annotated[str, Field(pattern=r"^wss?://")] = "ws://127.0.0.1:9000/ocpp"
    # In plain text: HTTP Basic sends it, the edge keeps only its hash. The
    # file is root:edge 0640 for this reason.
    password: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    response_timeout: Seconds = 30.0
    reconnect_max_interval: Seconds = 30.0


class WallboxSection(_Strict):
    protocol: str = "rapi"
    device: str = "/dev/ttyUSB0"
    baud_rate: Annotated[int, Field(ge=1200, le=1_000_000)] = 115200
    max_current: Amps = 32.0      # the installation's limit: cable, breaker, wallbox
    default_current: Amps = 6.0   # offered while the edge is unreachable
    phases: Annotated[int, Field(ge=1, le=3)] = 1
    nominal_voltage: Annotated[float, Field(ge=100, le=480)] = 230.0
    poll_interval: Seconds = 1.0
    reply_timeout: Seconds = 1.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    fault_after: Annotated[int, Field(ge=1, le=100)] = 3
    retry_max_interval: Seconds = 30.0

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in driver_names():
            raise ValueError(f"unknown wallbox protocol; known: {', '.join(driver_names())}")
        return value

    @model_validator(mode="after")
    def _default_within_max(self) -> "WallboxSection":
        if self.default_current > self.max_current:
            raise ValueError(f"default_current {self.default_current:g} is above max_current {self.max_current:g}")
        return self


class MeteringSection(_Strict):
    # MeterValueSampleInterval until the edge changes it (0: no periodic meter values).
    interval: Annotated[float, Field(ge=0, le=86400)] = 60.0


class BridgeConfig(_Strict):
    charge_point: ChargePointSection
    edge: EdgeSection = EdgeSection()
    wallbox: WallboxSection = WallboxSection()
    metering: MeteringSection = MeteringSection()
    # Where the queue of unsent messages lives. Default: $STATE_DIRECTORY
    # (systemd's StateDirectory=), else the config file's folder.
    state_dir: str = "."

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) / "bridge.sqlite"


def parse_config(text: str, source: str = "<config>", default_state_dir: str = ".") -> BridgeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    data.setdefault("state_dir", default_state_dir)
    try:
        return BridgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(exc.errors(), data)) from None


def load_config(path: str | Path, state_dir: str | None = None) -> BridgeConfig:
    """Read and validate a bridge config; `state_dir` (a command-line option) beats the file's."""
    path = Path(path)
    text = read_config_text(path)
    # systemd may list several directories, separated by colons; ours is the first.
    default = (os.environ.get("STATE_DIRECTORY") or "").split(":")[0] or str(path.resolve().parent)
    config = parse_config(text, str(path), default)
    return config.model_copy(update={"state_dir": state_dir}) if state_dir else config
