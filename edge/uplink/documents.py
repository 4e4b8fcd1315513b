"""The downlink's documents, checked and turned into what the edge applies. Pure.

Each function either returns the thing to apply or raises DocumentError with
every problem, each naming where it is ("caps[1].circuit: ..."). Formats are
in docs/sync-protocol.md.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Iterable, Literal

from pydantic import BaseModel, Field, ValidationError

from edge.auth.config import ChargeGroupConfig, TokenConfig, UserGroupConfig
from edge.auth.tokens import TokenError, canonical_id, canonical_uid, lookup_keys, reversed_uid
from edge.cdr.config import TariffConfig, TariffGroupConfig, check_tariffs, tariff_book
from edge.cdr.tariffs import TariffBook
from edge.clock import parse_iso
from edge.config_base import Strict
from edge.dlm.caps import Cap
from edge.dlm.model import Topology
from edge.ocpp.commands import CommandError, build_payload, resolve_action

# What the cloud may ask of a charger; anything else stays with the site's installer.
CLOUD_ACTIONS = ("RemoteStartTransaction", "RemoteStopTransaction", "Reset", "UnlockConnector", "ChangeAvailability")


class DocumentError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where or "(document)")
        out.append(f"{where}: {err['msg'].removeprefix('Value error, ')} (got {_short(err.get('input'))})")
    return out


def _short(value: Any, limit: int = 120) -> str:
    """An offending value as the error shows it: enough to find it, never the whole document."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# -- auth: the differential form ---------------------------------------------------------------------

class _Upsert(Strict):
    tokens: list[dict[str, Any]] = []
    user_groups: list[dict[str, Any]] = []
    charge_groups: list[dict[str, Any]] = []


class _Remove(Strict):
    tokens: list[str] = []            # uid or id_tag, any spelling
    user_groups: list[str] = []
    charge_groups: list[str] = []


class AuthDiff(Strict):
    base_version: Annotated[int, Field(ge=1)]   # the cloud version this diff was made against
    upsert: _Upsert = _Upsert()
    remove: _Remove = _Remove()
    default_policy: Literal["all-known", "free-vend", "closed"] | None = None


_ITEM_MODELS: dict[str, type[BaseModel]] = {"tokens": TokenConfig, "user_groups": UserGroupConfig,
                                            "charge_groups": ChargeGroupConfig}


def _token_key(entry: dict[str, Any]) -> str | None:
    try:
        return canonical_uid(entry["uid"]) if entry.get("uid") else canonical_id(entry.get("id_tag") or "")
    except (TokenError, TypeError):
        return None


def apply_auth_diff(document: dict[str, Any], diff: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The authorization document after `diff` (see docs/sync-protocol.md), and the diff's base
    version. Upserts replace an item with the same id (a token: the same card, also in reversed
    byte order); removing what is not there is no error, so a diff may be applied twice.
    The result is checked as a whole by the authorizer."""
    try:
        parsed = AuthDiff.model_validate(diff)
    except ValidationError as exc:
        raise DocumentError(_problems(exc)) from None
    problems: list[str] = []
    for table, model in _ITEM_MODELS.items():
        for index, item in enumerate(getattr(parsed.upsert, table)):
            try:
                model.model_validate(item)
            except ValidationError as exc:
                problems += _problems(exc, f"upsert.{table}[{index}]")
    if problems:
        raise DocumentError(problems)
    result = copy.deepcopy(document)
    for table in ("user_groups", "charge_groups"):
        drop = set(getattr(parsed.remove, table)) | {item["id"] for item in getattr(parsed.upsert, table)}
        result[table] = [i for i in result.get(table, []) if i.get("id") not in drop] + \
            list(getattr(parsed.upsert, table))
    gone: set[str] = set()
    for text in parsed.remove.tokens:
        gone |= set(lookup_keys(text))
    for entry in parsed.upsert.tokens:
        key = _token_key(entry)
        if key is not None:
            gone |= {key, reversed_uid(key)} if entry.get("uid") else {key}
    result["tokens"] = [t for t in result.get("tokens", []) if _token_key(t) not in gone] + list(parsed.upsert.tokens)
    if parsed.default_policy is not None:
        result["default_policy"] = parsed.default_policy
    return result, parsed.base_version


# -- tariffs -------------------------------------------------------------------------------------------

class TariffsDocument(Strict):
    tariffs: list[dict[str, Any]]
    tariff_groups: list[dict[str, Any]] = []


def tariffs_from(document: dict[str, Any], user_groups: Iterable[Any], chargers: list[str]) -> TariffBook:
    """A whole tariffs document ([[tariffs]] and [[tariff_groups]] as in the site config) -> the book.
    user_groups: the authorization model's (their `tariff` must name a tariff of the document)."""
    try:
        parsed = TariffsDocument.model_validate(document)
    except ValidationError as exc:
        raise DocumentError(_problems(exc)) from None
    problems: list[str] = []
    tariffs, groups = [], []
    for table, model, out in (("tariffs", TariffConfig, tariffs), ("tariff_groups", TariffGroupConfig, groups)):
        for index, item in enumerate(getattr(parsed, table)):
            label = f"{table}[{index}]" + (f' (id "{item["id"]}")' if isinstance(item.get("id"), str) else "")
            try:
                out.append(model.model_validate(item))
            except ValidationError as exc:
                problems += _problems(exc, label)
    if problems:
        raise DocumentError(problems)
    problems = check_tariffs(tariffs, groups, list(user_groups), chargers)
    if problems:
        raise DocumentError(problems)
    return tariff_book(tariffs, groups)


# -- limits --------------------------------------------------------------------------------------------

class _CapItem(Strict):
    circuit: str | None = None          # default: the grid connection (the circuit without a parent)
    max_current: Annotated[float, Field(ge=0, le=4000)]
    until: str | None = None            # ISO 8601 with offset; absent: until the next limits document
    reason: str = ""


class LimitsDocument(Strict):
    caps: list[_CapItem]


def caps_from(document: dict[str, Any], topology: Topology | None) -> dict[str, Cap]:
    """A whole limits document -> circuit id -> cap. An empty `caps` list lifts every cap."""
    if topology is None:
        raise DocumentError(["load management is off at this site (no [[circuits]] in its config): "
                             "there is no limit to cap"])
    try:
        parsed = LimitsDocument.model_validate(document)
    except ValidationError as exc:
        raise DocumentError(_problems(exc)) from None
    root = next(c.id for c in topology.circuits if c.parent is None)
    problems: list[str] = []
    caps: dict[str, Cap] = {}
    for index, item in enumerate(parsed.caps):
        where = f"caps[{index}]"
        circuit = item.circuit or root
        if circuit not in topology.by_id:
            problems.append(f"{where}.circuit: no circuit {circuit!r} at this site "
                            f"(circuits: {', '.join(c.id for c in topology.circuits)})")
            continue
        until = None
        if item.until is not None:
            until = parse_iso(item.until)
            if until is None or "T" not in item.until:
                problems.append(f"{where}.until: {item.until!r} is not an ISO 8601 time like 2026-06-01T18:00:00Z")
                continue
        if circuit in caps:
            problems.append(f"{where}.circuit: circuit {circuit!r} is capped twice")
            continue
        caps[circuit] = Cap(circuit, item.max_current, until, item.reason)
    if problems:
        raise DocumentError(problems)
    return caps


# -- commands ------------------------------------------------------------------------------------------

class CommandDocument(Strict):
    charger_id: Annotated[str, Field(min_length=1)]
    action: str
    params: dict[str, Any] = {}
    reason: str = ""


@dataclass(frozen=True)
class Command:
    charger_id: str
    action: str
    params: dict[str, Any]
    reason: str


def command_from(document: dict[str, Any], is_known: Any) -> Command:
    try:
        parsed = CommandDocument.model_validate(document)
    except ValidationError as exc:
        raise DocumentError(_problems(exc)) from None
    try:
        action = resolve_action(parsed.action)
    except CommandError as exc:
        raise DocumentError([f"action: {exc}"]) from None
    if action not in CLOUD_ACTIONS:
        raise DocumentError([f"action: {action} is not allowed from the cloud; one of {', '.join(CLOUD_ACTIONS)}"])
    try:
        build_payload(action, parsed.params)
    except (CommandError, TypeError) as exc:
        raise DocumentError([f"params: {exc}"]) from None
    if not is_known(parsed.charger_id):
        raise DocumentError([f"charger_id: no charger {parsed.charger_id!r} at this site"])
    return Command(parsed.charger_id, action, parsed.params, parsed.reason)


def expired(expires_at: str | None, now: datetime) -> str | None:
    """A reason when a command's expires_at has passed (or cannot be read), else None."""
    if expires_at is None:
        return None
    moment = parse_iso(expires_at)
    if moment is None:
        return f"expires_at {expires_at!r} is not an ISO 8601 time"
    if now >= moment:
        return f"expired at {expires_at} (the site's time is {now.isoformat()}); not executed"
    return None

