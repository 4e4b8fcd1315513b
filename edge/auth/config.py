"""The authorization part of the site config: [authorization], [[user_groups]],
[[charge_groups]], [[tokens]]. Validated by pydantic like the rest of the
config; cross-references (a token's group, a group's charge groups, a charge
group's chargers) are checked by `edge.auth.model.build_model`.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from edge.config_base import Strict as _Strict
from edge.config_base import got
from edge.auth.model import WEEKDAYS, AuthModel, Evse, ModelError, OpeningHours, build_model
from edge.dlm.needs import MAX_ENERGY_KWH, time_of_day

GROUP_ID = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9._\-]+$")]
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")




class ChargerSettings(_Strict):
    """OCPP configuration keys the edge sets on every charger (ChangeConfiguration) at connect."""

    local_auth_list_enabled: bool = True
    local_authorize_offline: bool = True        # a charger cut off from the edge still admits listed tokens
    authorization_cache_enabled: bool = False   # the cache outlives blocks; the local list is exact
    stop_transaction_on_invalid_id: bool = True


class AuthorizationSection(_Strict):
    # EVSEs in no charge group: "all-known" (any active token), "free-vend", or "closed".
    default_policy: Literal["all-known", "free-vend", "closed"] = "all-known"
    # A StartTransaction that arrives late (the charger was offline and used its
    # own list) for a token that is now blocked: "stop" it remotely or let it "finish".
    late_start_of_blocked: Literal["stop", "finish"] = "stop"
    # The idTag the edge uses to start free-vend sessions remotely (anonymous sessions).
    free_vend_id_tag: Annotated[str, Field(min_length=1, max_length=20)] = "FREEVEND"
    charger_settings: ChargerSettings = ChargerSettings()
    # false: the edge neither pushes local lists nor sets the auth keys, for
    # chargers whose lists are managed elsewhere.
    push_local_lists: bool = True


class UserGroupConfig(_Strict):
    id: GROUP_ID
    name: str = ""
    prioritised: bool = False
    tariff: str = ""
    charge_groups: list[str] = []
    allow_concurrent: bool = False
    archived: bool = False
    # Load management's `scheduled` strategy: when this group's cars usually leave ("17:30",
    # the next such time at the site) and how much energy they want, unless a session says otherwise.
    departure: str | None = None
    energy_kwh: Annotated[float, Field(gt=0, le=MAX_ENERGY_KWH)] | None = None

    @field_validator("departure")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is not None:
            time_of_day(value)
        return value


class EvseRef(_Strict):
    charger: str
    connector: Annotated[int, Field(ge=1, le=16)] | None = None      # as [[chargers]] connectors


def _parse_window(text: str) -> tuple[time, time]:
    m = _WINDOW.match(text.strip())
    if not m:
        raise ValueError(f"opening window {text!r} must look like '07:00-19:00'")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"opening window {text!r} is not a time of day")
    return time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2)


def _days(key: str) -> list[str]:
    key = key.lower()
    if key in ("daily", "all"):
        return list(WEEKDAYS)
    first, _, last = key.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise ValueError(f"opening hours day {key!r}: use mon..sun, a range like 'mon-fri', or 'daily'")
    if not last:
        return [first]
    i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
    return [WEEKDAYS[(i + k) % 7] for k in range((j - i) % 7 + 1)]


class ChargeGroupConfig(_Strict):
    id: GROUP_ID
    name: str = ""
    policy: Literal["private", "all-known", "free-vend"]
    # "CP-1" for every connector of a charger, or { charger = "CP-1", connector = 2 }.
    evses: list[str | EvseRef] = Field(min_length=1)
    # { "mon-fri" = "07:00-19:00", sat = ["08:00-12:00", "14:00-18:00"] }; absent: always open.
    opening_hours: dict[str, str | list[str]] | None = None
    outside_hours: Literal["inoperative", "operative-private"] = "inoperative"

    @field_validator("opening_hours")
    @classmethod
    def _valid_hours(cls, value: dict | None) -> dict | None:
        if value is not None:
            to_opening_hours(value)
        return value


def to_opening_hours(spec: dict[str, str | list[str]]) -> OpeningHours:
    windows: dict[str, list[tuple[time, time]]] = {}
    for key, value in spec.items():
        for day in _days(key):
            for text in [value] if isinstance(value, str) else value:
                windows.setdefault(day, []).append(_parse_window(text))
    return OpeningHours({d: tuple(w) for d, w in windows.items()})


class TokenConfig(_Strict):
    uid: str | None = None          # RFID card UID, hex, any separators / byte order
    id_tag: str | None = None       # any other token (app, remote start)
    user_group: str
    user: str = ""
    card_number: str = ""
    status: Literal["Active", "Blocked"] = "Active"
    expiry: datetime | None = None

    @field_validator("expiry")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expiry needs a time zone offset, e.g. 2027-01-31T23:59:59+01:00")
        return value


def model_document(user_groups: list[UserGroupConfig], charge_groups: list[ChargeGroupConfig],
                   tokens: list[TokenConfig], default_policy: str) -> dict[str, Any]:
    """The model as one JSON-able document: what the journal stores and the API exchanges."""
    return {
        "default_policy": default_policy,
        # Without the keys not set, so documents of groups without them stay as they were.
        "user_groups": [g.model_dump(exclude_none=True) for g in user_groups],
        "charge_groups": [c.model_dump(exclude_none=True) for c in charge_groups],
        "tokens": [t.model_dump(mode="json", exclude_none=True) for t in tokens],
    }


def model_from_document(version: int, document: dict[str, Any], known_chargers: list[str] | None) -> AuthModel:
    """Validate a model document (from the config, the journal or the API) and build the model.
    Raises pydantic.ValidationError or ModelError, both naming the item."""
    problems: list[str] = []
    user_groups = _items(document, "user_groups", UserGroupConfig, problems)
    charge_groups = _items(document, "charge_groups", ChargeGroupConfig, problems)
    tokens = _items(document, "tokens", TokenConfig, problems)
    if problems:
        raise ModelError(problems)
    return build_model(
        version,
        tokens=[t.model_dump(exclude_none=True) for t in tokens],
        user_groups=[{**g.model_dump(), "charge_groups": frozenset(g.charge_groups),
                      "departure": time_of_day(g.departure) if g.departure else None} for g in user_groups],
        charge_groups=[{
            "id": c.id, "name": c.name, "policy": c.policy, "outside_hours": c.outside_hours,
            "opening_hours": to_opening_hours(c.opening_hours) if c.opening_hours else None,
            "evses": tuple(Evse(e) if isinstance(e, str) else Evse(e.charger, e.connector) for e in c.evses),
        } for c in charge_groups],
        default_policy=document.get("default_policy", "all-known"),
        known_chargers=known_chargers,
    )


def _items(document: dict[str, Any], table: str, model: type[BaseModel], problems: list[str]) -> list:
    """Validate every item of one table, naming each bad one as the config
    loader does: 'charge_groups[1] (id "office").opening_hours: ...'."""
    items = document.get(table, [])
    if not isinstance(items, list):
        problems.append(f"{table}: must be a list (got {type(items).__name__})")
        return []
    valid = []
    for index, item in enumerate(items):
        label = f"{table}[{index}]"
        if isinstance(item, dict):
            name = item.get("id") or item.get("uid") or item.get("id_tag")
            label += f' ({"uid" if item.get("uid") and not item.get("id") else "id"} "{name}")' if name else ""
        try:
            valid.append(model.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"{label}{'.' + where if where else ''}: {err['msg'].removeprefix('Value error, ')}"
                                f"{got(err['loc'], err.get('input'))}")
    return valid
