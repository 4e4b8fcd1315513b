"""The cloud service's settings, from environment variables (a systemd
EnvironmentFile, a container's env): see docs/cloud.md for each one.

Validated with pydantic like the edge's config; an error names the variable,
its value and the problem.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cloud.db.connection import DatabaseUrlError, check_url

DEFAULT_DATABASE_URL = "sqlite:///cloud.db"


class ConfigError(ValueError):
    pass


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None            # TLS when set
    cert_file: str | None = None          # client certificate (with key_file)
    key_file: str | None = None
    client_id: str = Field(default_factory=lambda: f"cloud-{socket.gethostname()}")
    share_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] = "cloud"
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    # How long the broker keeps this instance's session while it is away. 0 (the default): none, and
    # every connection starts clean. An instance's subscriptions are shared, and Mosquitto (like EMQX)
    # goes on handing an absent member its share for as long as its session lives (issue 18: a dead
    # instance kept a third of the fleet's messages for days). Nothing is lost with 0: a site keeps
    # every message until the cloud's receipt and every ack until the cloud's AckReceipt, and sends
    # again what the dead instance had been handed.
    session_expiry: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 0
    # Messages the broker may have in flight to this instance before it must wait for our PUBACKs.
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 200


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    mqtt: MqttSettings = MqttSettings()
    log_level: str = "INFO"
    # Telemetry kept as sent for this many days, then as 1-minute aggregates until this many days
    # (cloud/store/retention.py). CDRs, sessions, statuses and alerts are kept for ever.
    telemetry_raw_days: Annotated[int, Field(ge=1, le=3650)] = 30
    telemetry_aggregate_days: Annotated[int, Field(ge=1, le=36500)] = 365

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_url(value)
        return value

    @field_validator("telemetry_aggregate_days")
    @classmethod
    def _aggregates_outlive_raw(cls, value: int, info: ValidationInfo) -> int:
        raw = info.data.get("telemetry_raw_days")
        if raw is not None and value < raw:
            raise ValueError(f"must be at least CLOUD_TELEMETRY_RAW_DAYS ({raw}): aggregates are made from "
                             "the raw telemetry that retention drops")
        return value


# Environment variable -> (section, key); section None is the top level.
ENV = {
    "DATABASE_URL": (None, "database_url"),
    "CLOUD_HTTP_HOST": (None, "http_host"),
    "CLOUD_HTTP_PORT": (None, "http_port"),
    "CLOUD_LOG_LEVEL": (None, "log_level"),
    "CLOUD_TELEMETRY_RAW_DAYS": (None, "telemetry_raw_days"),
    "CLOUD_TELEMETRY_AGGREGATE_DAYS": (None, "telemetry_aggregate_days"),
    "CLOUD_MQTT_HOST": ("mqtt", "host"),
    "CLOUD_MQTT_PORT": ("mqtt", "port"),
    "CLOUD_MQTT_USERNAME": ("mqtt", "username"),
    "CLOUD_MQTT_PASSWORD": ("mqtt", "password"),
    "CLOUD_MQTT_CA_FILE": ("mqtt", "ca_file"),
    "CLOUD_MQTT_CERT_FILE": ("mqtt", "cert_file"),
    "CLOUD_MQTT_KEY_FILE": ("mqtt", "key_file"),
    "CLOUD_MQTT_CLIENT_ID": ("mqtt", "client_id"),
    "CLOUD_MQTT_SHARE_GROUP": ("mqtt", "share_group"),
    "CLOUD_MQTT_KEEPALIVE": ("mqtt", "keepalive"),
    "CLOUD_MQTT_SESSION_EXPIRY": ("mqtt", "session_expiry"),
    "CLOUD_MQTT_RECEIVE_MAXIMUM": ("mqtt", "receive_maximum"),
}
_NAMES = {v: k for k, v in ENV.items()}


def settings_from(env: Mapping[str, str], **overrides: object) -> Settings:
    """Settings from environment variables; `overrides` (from command-line options) win."""
    data: dict = {"mqtt": {}}
    for name, (section, key) in ENV.items():
        value = env.get(name)
        if value is None or value == "":
            continue
        (data["mqtt"] if section == "mqtt" else data)[key] = value
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(p) for p in error["loc"])
            name = _NAMES.get((loc[0], loc[1]) if len(loc) > 1 else (None, loc[0]), ".".join(loc))
            problem = error["msg"]
            if isinstance(error.get("ctx", {}).get("error"), DatabaseUrlError):
                problem = str(error["ctx"]["error"])
            problems.append(f"{name}={error.get('input')!r}: {problem}")
        raise ConfigError("; ".join(problems)) from None


def load_settings(**overrides: object) -> Settings:
    return settings_from(os.environ, **overrides)
