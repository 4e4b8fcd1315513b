"""The site config: one TOML file an installer edits by hand.

TOML because the standard library reads it (tomllib), it has comments, and its
tables map one-to-one onto what an installer thinks about ([site], [ocpp],
[[chargers]]). Validation is pydantic; every error is turned into
"<file>: <key path>: <problem> (got <value>)" so the installer can find it.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from edge.auth.config import (AuthorizationSection, ChargeGroupConfig, TokenConfig, UserGroupConfig,
                              model_document, model_from_document)
from edge.auth.model import ModelError
from edge.cdr.config import (ChargeRecordsSection, SessionTimeoutsSection, TariffConfig, TariffGroupConfig,
                             check_tariffs)
from edge.config_base import Strict as _Strict
from edge.config_base import DQ, got, repeated, same_ids
from edge.meters.config import MeterConfig, bus_conflicts
from edge.dlm.config import (CircuitConfig, EvseSettings, LoadManagementSection, Rotation, SupplyPhase,
                             check_circuits)
from edge.ocpp.security import is_password_hash
from edge.recovery import RecoverySection
from edge.uplink.config import UplinkSection, not_reserved

# OCPP 1.6 identifiers are CiString... ; a charge point id ends up in a URL path
# and in file names of logs, so keep it to a safe, printable set.
CHARGER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,48}$")

SECONDS_PER_WEEK = 7 * 86_400


class SiteSection(_Strict):
    # The site's MQTT username at the cloud's broker, too: some names are reserved there.
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$"),
                  AfterValidator(not_reserved)]
    name: str = ""
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone, e.g. 'Europe/Berlin'") from None
        return value


def _check_host(value: str) -> str:
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IP address to listen on, e.g. '0.0.0.0' or '127.0.0.1'") from None
    return value


ListenHost = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=0, le=65535)]


class OcppTlsSection(_Strict):
    """wss:// for security profiles 2 and 3 (edge/ocpp/tls.py, docs/security.md), on its own port: ws:// stays
    on [ocpp] port for chargers at profile 0 and 1. Paths are relative to the state directory."""
    port: Port = 9443
    certificate: str = "tls/server.pem"     # the server certificate (PEM), its chain after it
    key: str = "tls/server.key"
    ca: str = "tls/ca.pem"                  # the site CA: chargers' client certificates (profile 3) are checked against it
    # How often the files are checked for a change (a renewed certificate is served without a restart).
    reload_every: Annotated[float, Field(ge=1, le=3600)] = 30.0
    # HTTPS with the same certificate for what chargers fetch and send: GetLog uploads, firmware downloads.
    https_port: Port = 8443
    # Who signs a charger's CSR (SignCertificate): the site CA on this box, or the operator's CA in the cloud
    # (the CSR goes up through the uplink, the certificate comes down; docs/security.md).
    csr_signing: Literal["site", "cloud"] = "site"


class OcppSection(_Strict):
    host: ListenHost = "0.0.0.0"
    port: Port = 9000
    # wss:// (security profiles 2 and 3); absent: ws:// only.
    tls: OcppTlsSection | None = None
    heartbeat_interval: Annotated[int, Field(ge=10, le=86400)] = 300
    unknown_chargers: Literal["reject", "pending"] = "reject"
    # How long a charger waits for our answer before it gives up on a call we send.
    response_timeout: Annotated[float, Field(ge=1, le=300)] = 30.0
    # A 1.6 frame is small; anything this big is a broken or hostile charger.
    max_frame_bytes: Annotated[int, Field(ge=4096, le=16 * 1024 * 1024)] = 256 * 1024
    # Per-connection flood guard: sustained rate and burst of incoming frames.
    # (The benchmark turns the guard off with a million.)
    max_messages_per_second: Annotated[float, Field(ge=0.1, le=1_000_000)] = 20.0
    message_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    # Vendors whose DataTransfer messages we accept and record.
    data_transfer_vendors: list[str] = []


class ConnectionSection(_Strict):
    # Seconds without a frame; a charger heartbeats at least once a day (ocpp.heartbeat_interval).
    temporarily_unavailable_after: Annotated[float, Field(ge=1, le=SECONDS_PER_WEEK)] = 120.0
    long_term_unavailable_after: Annotated[float, Field(ge=1, le=SECONDS_PER_WEEK)] = 300.0

    @model_validator(mode="after")
    def _ordered(self) -> "ConnectionSection":
        if self.long_term_unavailable_after <= self.temporarily_unavailable_after:
            raise ValueError(
                "long_term_unavailable_after must be greater than temporarily_unavailable_after"
            )
        return self


class ApiSection(_Strict):
    host: ListenHost = "127.0.0.1"
    port: Port = 8180
    # File holding the bearer token; created with a random token on first start.
    token_file: str = "api-token"
    # /metrics for a Prometheus scraper without the token (docs/metrics.md); off: it needs the token.
    metrics_without_token: bool = False


class WebSection(_Strict):
    """The installer's web page (docs/web-page.md), served on the [api] address."""
    # `edgectl password-hash`; `edgectl web password` keeps one in the state directory instead (it wins).
    installer_password_hash: str | None = None
    # The page shows the site without a login (actions still need one); never off loopback without a password.
    read_only_without_login: bool = False
    session_minutes: Annotated[int, Field(ge=5, le=7 * 24 * 60)] = 12 * 60

    @field_validator("installer_password_hash")
    @classmethod
    def _valid_hash(cls, value: str | None) -> str | None:
        if value is not None and not is_password_hash(value):
            raise ValueError("not a password hash; make one with `edgectl password-hash` or set the password "
                             "with `edgectl web password`")
        return value


class JournalSection(_Strict):
    path: str = "journal.sqlite"
    # The communication log keeps this many most recent frames per charger.
    communication_log_frames_per_charger: Annotated[int, Field(ge=100, le=1_000_000)] = 5000
    # Longest frame text kept in the communication log (the rest is cut).
    communication_log_frame_chars: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 4096


class ChargerConfig(_Strict):
    id: str
    # scrypt hash made with `edgectl password-hash`; the plain password never
    # sits in the config file.
    password_hash: str | None = None
    # OCPP security profile, the least it may connect with (docs/security.md): 1 = ws:// or wss:// (HTTP Basic
    # when a password is set), 2 = wss:// with HTTP Basic, 3 = wss:// with a client certificate from the site CA.
    security_profile: Literal[1, 2, 3] = 1
    # The public key of its calibrated meter (hex DER, as on the meter's label; OCMF signed meter values are
    # verified with it, docs/charge-records.md). Unset: read from the charger, else the records say unverifiable.
    meter_public_key: Annotated[str, Field(max_length=1100)] | None = None
    connectors: Annotated[int, Field(ge=1, le=16)] = 1
    max_current: Annotated[float, Field(gt=0, le=1000)] = 32.0
    phases: Literal[1, 3] = 3
    description: str = ""
    # Load management: the circuit it hangs from (default: the grid connection),
    # the supply phase of a 1-phase charger, the phase rotation of a 3-phase one.
    circuit: str | None = None
    phase: SupplyPhase = "L1"
    rotation: Rotation = "RST"
    # IEC 61851: below 6 A the car cannot charge; some cars need more.
    min_current: Annotated[float, Field(ge=0, le=100)] = 6.0
    # Takes OCPP charging profiles; if not, its max_current is always held for it.
    smart_charging: bool = True
    # Connectors that differ from the charger (wiring, max current).
    evses: list[EvseSettings] = []
    # Auto-recovery for this charger (edge/recovery.py); unset: as [recovery] enabled says.
    recovery: bool | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not CHARGER_ID.match(value):
            raise ValueError("charger id must be 1-48 characters of A-Z a-z 0-9 . _ : -")
        return value

    @field_validator("meter_public_key")
    @classmethod
    def _valid_meter_key(cls, value: str | None) -> str | None:
        from edge.cdr.signed_data import valid_public_key
        if value is None:
            return None
        key = valid_public_key(value)
        if key is None:
            raise ValueError("not a public key: hex of its DER form (SubjectPublicKeyInfo), 64 to 1024 digits")
        return key

    @field_validator("password_hash")
    @classmethod
    def _valid_hash(cls, value: str | None) -> str | None:
        if value is not None and not is_password_hash(value):
            raise ValueError(
                "not a password hash; make one with `edgectl password-hash` "
                "(the plain password does not belong in the config)"
            )
        return value


class SiteConfig(_Strict):
    site: SiteSection
    ocpp: OcppSection = OcppSection()
    connection: ConnectionSection = ConnectionSection()
    api: ApiSection = ApiSection()
    web: WebSection = WebSection()
    recovery: RecoverySection = RecoverySection()
    journal: JournalSection = JournalSection()
    authorization: AuthorizationSection = AuthorizationSection()
    chargers: list[ChargerConfig] = []
    user_groups: list[UserGroupConfig] = []
    charge_groups: list[ChargeGroupConfig] = []
    tokens: list[TokenConfig] = []
    load_management: LoadManagementSection = LoadManagementSection()
    meters: list[MeterConfig] = []
    circuits: list[CircuitConfig] = []
    charge_records: ChargeRecordsSection = ChargeRecordsSection()
    session_timeouts: SessionTimeoutsSection = SessionTimeoutsSection()
    tariffs: list[TariffConfig] = []
    tariff_groups: list[TariffGroupConfig] = []
    uplink: UplinkSection = UplinkSection()
    # Directory relative paths (journal, token file) are resolved against;
    # set by load_config to the state directory, not read from the file.
    state_dir: str = "."

    def auth_document(self) -> dict:
        return model_document(self.user_groups, self.charge_groups, self.tokens, self.authorization.default_policy)

    def charger(self, charger_id: str) -> ChargerConfig | None:
        for charger in self.chargers:
            if charger.id == charger_id:
                return charger
        return None

    def state_path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else Path(self.state_dir) / path


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists one line per error."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _key_path(loc: tuple, data: dict) -> str:
    """('chargers', 1, 'max_current') -> 'chargers[1].max_current (id "CP-2")'."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "id" in node:
                    parts[-1] += f' (id "{node["id"]}")'
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def describe_errors(errors: list[dict], data: dict) -> list[str]:
    """One line per error: key path, problem and the value, where showing it is safe
    (never a secret, never a whole table: see edge.config_base.shown_value)."""
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            problems.append(f"{_key_path(loc, data)}: unknown key (check the spelling)")
        elif err["type"] == "missing":
            problems.append(f"{_key_path(loc, data)}: required key is missing")
        else:
            problems.append(f"{_key_path(loc, data)}: {msg}{got(loc, err.get('input'))}")
    return problems


def unique_ids(config: SiteConfig) -> list[str]:
    """Ids given twice, ignoring case, in the tables not checked elsewhere (chargers and the
    authorization groups; meters, circuits and tariffs are checked with their other cross-references)."""
    problems = [f"charger id {repeated(a, b)} appears more than once in [[chargers]]"
                for a, b in same_ids(c.id for c in config.chargers)]
    for table, items in (("user_groups", config.user_groups), ("charge_groups", config.charge_groups)):
        problems += [f"{table} {repeated(a, b, DQ)}: defined twice" for a, b in same_ids(g.id for g in items)]
    return problems


def config_warnings(config: SiteConfig) -> list[str]:
    """What is allowed but risky; said by `edgectl config check` and logged at every start."""
    warnings = []
    unprotected = [c.id for c in config.chargers if c.password_hash is None]
    if unprotected:
        warnings.append(f"no password for {', '.join(unprotected)}: anyone on the network can connect as them "
                        "(set password_hash, see `edgectl password-hash`)")
    warnings += over_circuit(config)
    if not _loopback(config.api.host):
        warnings.append(f"[api] host = {config.api.host!r} is reachable from the network: the local API "
                        "carries its bearer token over plain HTTP; keep it on 127.0.0.1 unless a firewall "
                        "or a TLS proxy guards it")
    return warnings


def over_circuit(config: SiteConfig) -> list[str]:
    """A charger (or connector) allowed more than the circuit it hangs from: load management keeps the
    fuse, but the config most likely says the wrong circuit or the wrong maximum (an 80 A charger on 63 A)."""
    limits = {c.id: c.limit for c in config.circuits}
    root = next((c.id for c in config.circuits if c.parent is None), None)
    out = []
    for charger in config.chargers:
        circuit = charger.circuit or root
        if circuit not in limits:
            continue
        highest = max([charger.max_current] + [e.max_current for e in charger.evses if e.max_current is not None])
        if highest > limits[circuit]:
            out.append(f"charger {charger.id!r}: max_current {highest:g} A is above its circuit {circuit!r}'s "
                       f"limit {limits[circuit]:g} A (wrong circuit or wrong maximum?)")
    return out


def _loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def parse_config(text: str, source: str = "<config>", state_dir: str | None = None) -> SiteConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    if state_dir is not None:
        if "state_dir" in data:
            raise ConfigError(source, ["state_dir: unknown key (check the spelling)"])
        data["state_dir"] = state_dir
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(exc.errors(), data)) from None
    problems = unique_ids(config)
    problems += [f'chargers (id "{c.id}").security_profile: {c.security_profile} needs wss://, and [ocpp.tls] '
                 "is not set (make the certificates with `edgectl ca init` and `edgectl ca server-cert`)"
                 for c in config.chargers if c.security_profile >= 2 and config.ocpp.tls is None]
    problems += check_circuits(config.circuits, config.chargers, {m.id for m in config.meters})
    problems += bus_conflicts(config.meters)
    problems += check_tariffs(config.tariffs, config.tariff_groups, config.user_groups,
                              [c.id for c in config.chargers])
    if problems:
        raise ConfigError(source, problems)
    try:
        # Cross-references: a token's user group, a group's charge groups, a charge group's chargers.
        model_from_document(1, config.auth_document(), known_chargers=[c.id for c in config.chargers])
    except ModelError as exc:
        raise ConfigError(source, exc.problems) from None
    return config


def load_config(path: str | Path, state_dir: str | None = None) -> SiteConfig:
    """Read and validate the site config. Relative state paths resolve against
    `state_dir` (systemd's $STATE_DIRECTORY in production), else the config's folder."""
    path = Path(path)
    return parse_config(read_config_text(path), str(path), state_dir or str(path.resolve().parent))


def read_config_text(path: Path) -> str:
    """A config file's text, or a ConfigError saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["the file is not UTF-8 text"]) from None
