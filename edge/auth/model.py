"""The local authorization model: id tokens, user groups, charge groups.

Plain immutable data, built and checked in one place (`build_model`), so the
decision function can trust it. Terms follow the operator manuals:

- an **id token** (RFID card or app id) belongs to a user and a user group;
- a **user group** (tenants, employees, visitors) may charge in some charge
  groups, may be prioritised by the load manager, and is billed on a tariff;
- a **charge group** is a set of EVSEs with an access policy: `private` (only
  its user groups), `all-known` (any active token of the site), `free-vend`
  (no token needed), and optional opening hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Iterable, Literal

from edge.auth.tokens import TokenError, canonical_id, canonical_uid, lookup_keys, reversed_uid

Policy = Literal["private", "all-known", "free-vend"]
OutsideHours = Literal["inoperative", "operative-private"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class IdToken:
    id_tag: str                     # canonical: upper-case hex UID, or upper-case opaque id
    user_group: str
    user: str = ""
    card_number: str = ""
    status: Literal["Active", "Blocked"] = "Active"
    expiry: datetime | None = None  # timezone-aware
    is_uid: bool = True


@dataclass(frozen=True)
class UserGroup:
    id: str                          # also the parentIdTag sent to chargers (<= 20 chars)
    name: str = ""
    prioritised: bool = False
    tariff: str = ""
    charge_groups: frozenset[str] = frozenset()
    allow_concurrent: bool = False   # may one token run sessions on two EVSEs at once
    archived: bool = False
    departure: time | None = None    # its cars' usual departure, a time of day at the site (load management)
    energy_kwh: float | None = None  # and the energy they usually want


@dataclass(frozen=True)
class OpeningHours:
    """Weekly windows in the site's time zone: {weekday: ((open, close), ...)}.
    close <= open means the window runs past midnight."""
    windows: dict[str, tuple[tuple[time, time], ...]]

    def is_open(self, local: datetime) -> bool:
        today, yesterday = WEEKDAYS[local.weekday()], WEEKDAYS[(local.weekday() - 1) % 7]
        now = local.time()
        for start, end in self.windows.get(today, ()):
            if (start < end and start <= now < end) or (end <= start and now >= start):
                return True
        # A window that opened yesterday evening and closes this morning.
        return any(end <= start and now < end for start, end in self.windows.get(yesterday, ()))


@dataclass(frozen=True)
class Evse:
    charger_id: str
    connector_id: int | None = None  # None: every connector of the charger


@dataclass(frozen=True)
class ChargeGroup:
    id: str
    policy: Policy
    evses: tuple[Evse, ...]
    name: str = ""
    opening_hours: OpeningHours | None = None
    outside_hours: OutsideHours = "inoperative"

    def contains(self, charger_id: str, connector_id: int | None) -> bool:
        """connector_id None (an Authorize, which names no connector): any of the charger's."""
        return any(e.charger_id == charger_id and (e.connector_id is None or connector_id is None
                                                   or e.connector_id == connector_id) for e in self.evses)


@dataclass(frozen=True)
class AuthModel:
    version: int
    tokens: dict[str, IdToken] = field(default_factory=dict)        # by canonical id tag
    user_groups: dict[str, UserGroup] = field(default_factory=dict)
    charge_groups: dict[str, ChargeGroup] = field(default_factory=dict)
    # EVSEs in no charge group: what access they get.
    default_policy: Literal["all-known", "free-vend", "closed"] = "all-known"

    def find(self, presented: str) -> IdToken | None:
        # Only RFID UIDs are matched with separators removed or bytes reversed;
        # an opaque id must match exactly (case-insensitively).
        for index, key in enumerate(lookup_keys(presented)):
            token = self.tokens.get(key)
            if token is not None and (index == 0 or token.is_uid):
                return token
        return None

    def groups_of(self, charger_id: str, connector_id: int | None) -> list[ChargeGroup]:
        return [g for g in self.charge_groups.values() if g.contains(charger_id, connector_id)]

    def admitted_groups(self, charge_group: str) -> frozenset[str]:
        return frozenset(g.id for g in self.user_groups.values() if charge_group in g.charge_groups)


class ModelError(ValueError):
    """The authorization model is inconsistent; `problems` names each item."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def build_model(version: int, tokens: Iterable[dict], user_groups: Iterable[dict], charge_groups: Iterable[dict],
                default_policy: str = "all-known", known_chargers: Iterable[str] | None = None) -> AuthModel:
    """Check references and token spelling, and build the model; every problem
    names the item (`tokens[3] (uid "04:A2")`, `user_groups "tenants"`)."""
    problems: list[str] = []
    groups: dict[str, UserGroup] = {}
    for g in user_groups:
        if g["id"] in groups:
            problems.append(f'user_groups "{g["id"]}": defined twice')
        groups[g["id"]] = UserGroup(**g)
    charge: dict[str, ChargeGroup] = {}
    chargers = set(known_chargers) if known_chargers is not None else None
    for c in charge_groups:
        if c["id"] in charge:
            problems.append(f'charge_groups "{c["id"]}": defined twice')
        for evse in c["evses"]:
            if chargers is not None and evse.charger_id not in chargers:
                problems.append(f'charge_groups "{c["id"]}": charger "{evse.charger_id}" is not a charger of this site')
        charge[c["id"]] = ChargeGroup(**c)
    for g in groups.values():
        for name in sorted(g.charge_groups - set(charge)):
            problems.append(f'user_groups "{g.id}": charge group "{name}" does not exist')
    by_tag: dict[str, IdToken] = {}
    for index, t in enumerate(tokens):
        label = f'tokens[{index}] ({"uid" if t.get("uid") else "id_tag"} "{t.get("uid") or t.get("id_tag")}")'
        try:
            if bool(t.get("uid")) == bool(t.get("id_tag")):
                raise TokenError("give exactly one of uid (an RFID card) or id_tag (any other token)")
            tag = canonical_uid(t["uid"]) if t.get("uid") else canonical_id(t["id_tag"])
        except TokenError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if t["user_group"] not in groups:
            problems.append(f'{label}: user group "{t["user_group"]}" does not exist')
        # The same card in the other byte order clashes too, whichever of the two
        # was listed first, and so does an opaque id that a reversing reader
        # would report for a listed card.
        other = by_tag.get(reversed_uid(tag)) if len(tag) % 2 == 0 else None
        clash = by_tag.get(tag) or (other if other is not None and (other.is_uid or t.get("uid")) else None)
        if clash is not None:
            problems.append(f"{label}: the same card as token {clash.id_tag} (also in reversed byte order)")
        fields = {k: v for k, v in t.items() if k not in ("uid", "id_tag")}
        by_tag[tag] = IdToken(id_tag=tag, is_uid=bool(t.get("uid")), **fields)
    if problems:
        raise ModelError(problems)
    return AuthModel(version=version, tokens=by_tag, user_groups=groups, charge_groups=charge,
                     default_policy=default_policy)  # type: ignore[arg-type]
