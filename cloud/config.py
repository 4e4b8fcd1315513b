"""The cloud service's settings, from environment variables (a systemd
EnvironmentFile, a container's env): see docs/cloud.md for each one.

Validated with pydantic like the edge's config; an error names the variable,
its value and the problem.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cloud.db.connection import DatabaseUrlError, check_url

DEFAULT_DATABASE_URL = "sqlite:///cloud.db"


class ConfigError(ValueError):
    pass


BROKER_NAME = r"^[A-Za-z0-9_\-]{1,32}$"


class Broker(BaseModel):
    """One broker process the sites are spread over (a shard): its name in the site map, where it is."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=BROKER_NAME)]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]


def _listed(value: object) -> object:
    """`a, b` in an environment variable: a comma-separated list, blanks ignored."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _pairs(value: object, what: str) -> object:
    """`x=y, ...` -> ((x, y), ...); anything already parsed is left to pydantic."""
    items = _listed(value)
    if not isinstance(items, tuple) or not all(isinstance(item, str) for item in items):
        return items
    out = []
    for item in items:
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise ValueError(f"{item!r} is not {what}")
        out.append((left.strip(), right.strip()))
    return tuple(out)


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
    # The longest wait (s) between two attempts to reconnect to a broker that is away (the first is 1 s,
    # then doubling). The tests' brokers come back within a second; a real one is not hammered.
    reconnect_max_delay: Annotated[int, Field(ge=1, le=600)] = 10
    # Messages the broker may have in flight to this instance before it must wait for our PUBACKs.
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 200
    # Several broker processes, each with a share of the sites (docs/cloud.md, "Several brokers"): every
    # instance connects to each (same account, client id and share group), and a push leaves through
    # the broker its site is on. Empty: the one broker at host:port.
    brokers: tuple[Broker, ...] = ()
    # Which sites are on which broker: (glob pattern over site ids, broker name), first match wins; a
    # site no pattern matches goes by a hash of its id (cloud.brokers.broker_of).
    site_brokers: tuple[tuple[str, str], ...] = ()

    @field_validator("brokers", mode="before")
    @classmethod
    def _brokers(cls, value: object) -> object:
        pairs = _pairs(value, "NAME=HOST:PORT (e.g. a=10.0.0.5:1883)")
        if not isinstance(pairs, tuple) or not all(isinstance(p, tuple) for p in pairs):
            return pairs
        out = []
        for name, address in pairs:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{name}={address!r}: the address must be HOST:PORT (e.g. 10.0.0.5:1883)")
            out.append({"name": name, "host": host.strip("[]"), "port": int(port)})
        return tuple(out)

    @field_validator("brokers")
    @classmethod
    def _unique(cls, value: tuple[Broker, ...]) -> tuple[Broker, ...]:
        names = [b.name for b in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"broker {', '.join(twice)} is named twice")
        return value

    @field_validator("site_brokers", mode="before")
    @classmethod
    def _site_brokers(cls, value: object) -> object:
        return _pairs(value, "PATTERN=BROKER (e.g. north-*=a)")

    @model_validator(mode="after")
    def _map_names_brokers(self) -> "MqttSettings":
        known = {b.name for b in self.shards}
        unknown = sorted({name for _, name in self.site_brokers if name not in known})
        if unknown:
            raise ValueError(f"CLOUD_MQTT_SITE_BROKERS names broker {', '.join(unknown)}, which CLOUD_MQTT_BROKERS "
                             f"does not define (it defines {', '.join(sorted(known))})")
        return self

    @property
    def shards(self) -> tuple[Broker, ...]:
        """Every broker the instance connects to; without CLOUD_MQTT_BROKERS, the one at host:port."""
        return self.brokers or (Broker(name="main", host=self.host, port=self.port),)

    def for_broker(self, broker: Broker) -> "MqttSettings":
        """These settings for one connection: to that broker."""
        return self.model_copy(update={"host": broker.host, "port": broker.port})


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
    # The operator's CA, which signs chargers' CSRs the sites send up (cloud/certificates.py, docs/security.md):
    # its certificate (PEM; intermediates up to the root may follow it: they go down with each certificate) and
    # its key (PEM, unencrypted: the file's mode protects it). Neither: CSRs are refused, saying so.
    ca_certificate: str | None = None
    ca_key: str | None = None
    certificate_days: Annotated[int, Field(ge=1, le=3650)] = 730
    # A push its request could not publish (its site's broker away) goes once it is this old, in seconds
    # (cloud/downlink.py REPUBLISH_AFTER_S): younger, its request may still be publishing it.
    republish_after_s: Annotated[float, Field(ge=0, le=3600)] = 10.0

    @model_validator(mode="after")
    def _ca_pair(self) -> "Settings":
        if (self.ca_certificate is None) != (self.ca_key is None):
            raise ValueError("CLOUD_CA_CERTIFICATE and CLOUD_CA_KEY go together (the CA's certificate and its key)")
        return self

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
    "CLOUD_CA_CERTIFICATE": (None, "ca_certificate"),
    "CLOUD_CA_KEY": (None, "ca_key"),
    "CLOUD_CERTIFICATE_DAYS": (None, "certificate_days"),
    "CLOUD_REPUBLISH_AFTER": (None, "republish_after_s"),
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
    "CLOUD_MQTT_RECONNECT_MAX_DELAY": ("mqtt", "reconnect_max_delay"),
    "CLOUD_MQTT_BROKERS": ("mqtt", "brokers"),
    "CLOUD_MQTT_SITE_BROKERS": ("mqtt", "site_brokers"),
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
            name = _NAMES.get((loc[0], loc[1]) if len(loc) > 1 else (None, loc[0]) if loc else None, ".".join(loc))
            problem = error["msg"]
            if isinstance(error.get("ctx", {}).get("error"), DatabaseUrlError):
                problem = str(error["ctx"]["error"])
            if loc in (("mqtt",), ()):   # settings that disagree with each other: the problem names them
                problems.append(problem.removeprefix("Value error, "))
            else:
                problems.append(f"{name}={error.get('input')!r}: {problem}")
        raise ConfigError("; ".join(problems)) from None


def load_settings(**overrides: object) -> Settings:
    return settings_from(os.environ, **overrides)
