"""The [uplink] table of the site config: how the edge reaches the cloud's MQTT broker.

Off unless `enabled = true`. Username defaults to the site id, the identity the
broker's ACL gives its own topic subtree (config/mosquitto/acl). A password can
sit in its own file (`password_file`, relative paths in the state directory) so
the site config can be shared without the secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edge.config_base import Strict

# MQTT usernames a site may not have, as its site id or [uplink] username (compared ignoring
# case). The cloud service's users and client ids at the broker start with "cloud" (cloud-1,
# cloud-2, ...) and are given the whole tree: cloud/broker_accounts.py refuses such site ids
# (RESERVED_PREFIX, the same word; a test keeps the two equal). "." and ".." are path steps,
# not names. '$' (the broker's system prefix), the wildcards '+' and '#', and the separator
# '/' are refused by the character sets of both keys already.
RESERVED_PREFIX = "cloud"
RESERVED_USERNAMES = frozenset({".", ".."})
USERNAME = r"^[A-Za-z0-9._\-]*$"     # as a site id; empty: the site id


def not_reserved(value: str) -> str:
    if value.casefold().startswith(RESERVED_PREFIX) or value in RESERVED_USERNAMES:
        raise ValueError(f"{value!r} is reserved: names starting with 'cloud' belong to the cloud service "
                         "at the broker, and '.' and '..' are not names")
    return value


class UplinkSection(Strict):
    enabled: bool = False
    host: str = ""
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    # "5" (MQTT 5, the default) or "3.1.1" for brokers that lack 5.
    protocol: Literal["5", "3.1.1"] = "5"
    # The MQTT username and client id; empty: the site id.
    username: Annotated[str, Field(max_length=64, pattern=USERNAME), AfterValidator(not_reserved)] = ""
    password: str = ""
    # A file holding the password (first line), instead of `password`.
    password_file: str = ""
    # TLS (1.2 or newer, the broker's certificate and name always verified): unset = on at port 8883 (MQTT over
    # TLS) or when a CA file or a client certificate is given; true = on with the system's CAs (or ca_file).
    tls: bool | None = None
    ca_file: str = ""
    cert_file: str = ""            # client certificate (PEM), instead of or next to a password
    key_file: str = ""
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    # How long the broker keeps this site's session (commands queued for it) while it is offline, s.
    session_expiry: Annotated[int, Field(ge=0, le=30 * 86400)] = 7 * 86400
    # The outbox may take this much of the disk; then telemetry is thinned, then dropped (never CDRs).
    disk_budget_mb: Annotated[float, Field(ge=0.01, le=100_000)] = 200.0
    # One telemetry message (per-phase current and power of each circuit) per this many seconds.
    telemetry_interval: Annotated[float, Field(ge=1, le=86400)] = 60.0
    # Batches (each up to 500 messages) waiting for their PUBACK, per stream.
    max_inflight: Annotated[int, Field(ge=1, le=100)] = 4
    # s: a batch the cloud has not confirmed storing (its receipt) within this is sent again; the
    # wait doubles (to 20 times this) while the cloud confirms nothing, e.g. while it is down.
    receipt_timeout: Annotated[float, Field(ge=0.1, le=3600)] = 15.0
    # Reconnect backoff: doubles from the first to the last delay (s), with jitter.
    reconnect_min_delay: Annotated[float, Field(ge=0.1, le=600)] = 1.0
    reconnect_max_delay: Annotated[float, Field(ge=0.1, le=3600)] = 120.0

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        # protocol = 5 is the natural way to write it in TOML; 3.1.1 has to be a string.
        return "5" if value == 5 else value

    @model_validator(mode="after")
    def _complete(self) -> "UplinkSection":
        if self.enabled and not self.host:
            raise ValueError("host is required when the uplink is enabled (the cloud's MQTT broker)")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        if self.password and self.password_file:
            raise ValueError("give password or password_file, not both")
        if self.tls is False and (self.ca_file or self.cert_file):
            raise ValueError("tls = false, but ca_file or cert_file is given: those are TLS settings")
        if self.tls is False and self.port == 8883:
            raise ValueError("tls = false at port 8883, MQTT over TLS: the connection would fail, or the password "
                             "cross the network in clear; plain MQTT is port 1883 (and only inside a trusted network)")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must not be below reconnect_min_delay")
        return self

    @property
    def use_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return self.port == 8883 or bool(self.ca_file or self.cert_file)

    @property
    def disk_budget_bytes(self) -> int:
        return int(self.disk_budget_mb * 1024 * 1024)

    def client_username(self, site_id: str) -> str:
        return self.username or site_id

    def read_password(self, resolve: Callable[[str], Path]) -> str | None:
        """The password, from the config or its file; None when there is none."""
        if self.password_file:
            text = resolve(self.password_file).read_text(encoding="utf-8")
            return text.splitlines()[0].strip() if text.strip() else None
        return self.password or None
