"""Tariffs and tariff groups as plain immutable data, and which tariff applies.

Terms follow the operator manuals (seed 004): a **tariff** says how a session
is priced (its type and prices), whom it is for (its restrictions) and when
the edge stops a session (its limits). A **tariff group** is attached to EVSEs:
a base tariff for everybody plus an ordered list of restricted tariffs; of the
tariffs whose restrictions match a session, the lowest in the list applies,
and the base tariff when none does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from typing import Literal

from edge.auth.model import Evse

TariffType = Literal["free", "flat", "duration-energy", "duration-energy-tod", "power-levels"]
# How a session was authorized, for the restrictions: a known token of a user
# group, an unknown card admitted anyway (ad hoc), or anonymous free vend.
AuthKind = Literal["token", "ad-hoc", "free-vend"]
ZERO = Decimal(0)


@dataclass(frozen=True)
class Rates:
    """Gross prices (VAT included), as the operator enters them."""
    per_kwh: Decimal = ZERO
    per_minute: Decimal = ZERO


@dataclass(frozen=True)
class PowerLevel:
    max_kw: Decimal
    per_minute: Decimal


@dataclass(frozen=True)
class Restrictions:
    user_groups: frozenset[str] = frozenset()
    ad_hoc: bool = False
    free_vend: bool = False

    def empty(self) -> bool:
        return not (self.user_groups or self.ad_hoc or self.free_vend)

    def admit(self, kind: AuthKind, user_group: str | None) -> bool:
        if kind == "free-vend":
            return self.free_vend
        if kind == "ad-hoc":
            return self.ad_hoc
        return user_group is not None and user_group in self.user_groups


@dataclass(frozen=True)
class Tariff:
    id: str
    type: TariffType
    name: str = ""
    per_session: Decimal = ZERO              # flat
    connection_fee: Decimal = ZERO           # duration-energy, -tod, power-levels
    rates: Rates = Rates()                   # duration-energy; the day rates of -tod
    night_rates: Rates = Rates()             # duration-energy-tod
    day_starts: time = time(6, 0)            # duration-energy-tod, site local time
    night_starts: time = time(22, 0)
    power_levels: tuple[PowerLevel, ...] = ()   # ascending max_kw
    blocking_per_minute: Decimal = ZERO      # any type: after blocking_after_minutes of the session
    blocking_after_minutes: Decimal = ZERO
    max_minutes: Decimal | None = None       # the edge stops the session at this duration ...
    max_kwh: Decimal | None = None           # ... or this energy
    restrictions: Restrictions = Restrictions()
    # Billing features of any priced type (docs/tariffs.md):
    min_price: Decimal | None = None         # a session costs at least this (gross) ...
    max_price: Decimal | None = None         # ... and at most this
    time_step_minutes: Decimal | None = None     # minutes are billed per started step (1: per started minute)
    energy_step_kwh: Decimal | None = None       # energy is billed per started step of this many kWh
    idle_per_minute: Decimal = ZERO          # from when the car stopped drawing power ...
    idle_grace_minutes: Decimal = ZERO       # ... and this long after, until the stop
    auto_stop_price: Decimal | None = None   # the edge stops the session when its price reaches this


FREE = Tariff(id="free", type="free", name="Free (no tariff group for this EVSE)")


@dataclass(frozen=True)
class TariffGroup:
    id: str
    base: Tariff
    ordered: tuple[Tariff, ...] = ()         # top to bottom; the lowest match wins
    name: str = ""


@dataclass(frozen=True)
class TariffBook:
    """Everything pricing needs from the config: groups and the EVSEs they apply to."""
    groups: dict[str, TariffGroup] = field(default_factory=dict)
    evses: tuple[tuple[Evse, str], ...] = ()     # (EVSE, tariff group id); a connector beats a whole charger
    # A user group's own `tariff` key (authorization model): it counts as a
    # restriction of that tariff naming the group. Given per lookup, since the
    # authorization model can change while the edge runs.

    def group_for(self, charger_id: str, connector_id: int | None) -> TariffGroup | None:
        whole = None
        for evse, group_id in self.evses:
            if evse.charger_id != charger_id:
                continue
            if evse.connector_id is not None and evse.connector_id == connector_id:
                return self.groups[group_id]
            if evse.connector_id is None and whole is None:
                whole = self.groups[group_id]
        return whole


def select_tariff(group: TariffGroup | None, kind: AuthKind, user_group: str | None,
                  group_tariffs: dict[str, str] | None = None) -> Tariff:
    """The tariff for a session: the lowest tariff of the group whose
    restrictions admit it, else the base tariff; FREE without a group.

    `group_tariffs`: user group id -> the tariff id its `tariff` key names.
    """
    if group is None:
        return FREE
    named = (group_tariffs or {}).get(user_group or "", "") if kind == "token" else ""
    for tariff in reversed(group.ordered):
        if tariff.restrictions.admit(kind, user_group) or (named and tariff.id == named):
            return tariff
    return group.base
