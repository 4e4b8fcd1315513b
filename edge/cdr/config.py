"""The charge-record part of the site config: [charge_records],
[session_timeouts], [[tariffs]] and [[tariff_groups]].

Validated by pydantic like the rest of the config. Prices are gross (VAT
included) and may be written as TOML numbers or strings ("0.39"); they are
read as decimals, never as binary floats. Cross-references (a group's
tariffs, a restriction's user groups, a user group's `tariff`, a group's
chargers) are checked by `check_tariffs`, each problem naming the item.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Annotated, Any, Iterable
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from edge.auth.config import EvseRef
from edge.auth.model import Evse
from edge.cdr.plausibility import Thresholds
from edge.cdr.record import Pricing
from edge.cdr.tariffs import PowerLevel, Rates, Restrictions, Tariff, TariffBook, TariffGroup, TariffType
from edge.config_base import Strict as _Strict
from edge.config_base import DQ, repeated, same_ids

Money = Annotated[Decimal, Field(ge=0, le=100_000)]
# The longest a session may meaningfully last: a month. Pricing and the session watch turn
# these into timedeltas, which end at 999,999,999 days: 1e10 minutes would overflow there.
MINUTES_PER_MONTH = 31 * 24 * 60
Minutes = Annotated[Decimal, Field(ge=0, le=MINUTES_PER_MONTH)]
Kwh = Annotated[Decimal, Field(gt=0, le=100_000)]
ItemId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._\-]+$")]


class PlausibilitySection(_Strict):
    min_energy_kwh: Annotated[float, Field(ge=0, le=1000)] = 0.2
    max_energy_kwh: Annotated[float, Field(gt=0, le=100_000)] = 5000.0
    min_duration_minutes: Annotated[float, Field(ge=0, le=1440)] = 1.0
    max_duration_days: Annotated[float, Field(gt=0, le=366)] = 14.0
    power_tolerance_percent: Annotated[float, Field(ge=0, le=100)] = 10.0
    future_tolerance_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300.0

    def thresholds(self) -> Thresholds:
        return Thresholds(self.min_energy_kwh, self.max_energy_kwh, self.min_duration_minutes * 60,
                          self.max_duration_days * 86_400, self.power_tolerance_percent / 100,
                          self.future_tolerance_seconds)


class ChargeRecordsSection(_Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    vat_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(19)
    # An EVSE's maximum power is max_current x phases x this (for "power implausible").
    nominal_voltage: Annotated[float, Field(ge=50, le=1000)] = 230.0
    plausibility: PlausibilitySection = PlausibilitySection()

    def pricing(self, tz: ZoneInfo) -> Pricing:
        return Pricing(self.currency, self.vat_percent, self.plausibility.thresholds(), tz)

    def evse_max_power_w(self, charger: Any | None, connector_id: int | None) -> float:
        """max_current x phases x nominal voltage of a [[chargers]] entry, or of
        its connector where `evses` says otherwise; a charger adopted without
        config entry counts as 32 A on 3 phases."""
        amps, phases = (charger.max_current, charger.phases) if charger is not None else (32.0, 3)
        for evse in getattr(charger, "evses", ()):
            if evse.connector == connector_id:
                amps, phases = evse.max_current or amps, evse.phases or phases
        return amps * phases * self.nominal_voltage


class SessionTimeoutsSection(_Strict):
    # An accepted Authorize or remote start with no StartTransaction this long after is Failed.
    fail_start_after: Annotated[float, Field(ge=1, le=3600)] = 60.0             # seconds
    # A running session without MeterValues this long is closed by the edge.
    finish_after_inactivity: Annotated[float, Field(ge=1, le=MINUTES_PER_MONTH)] = 120.0   # minutes
    # After a charger boots, how long its forgotten sessions get to be stopped by it before the edge closes them.
    reboot_grace: Annotated[float, Field(ge=0, le=3600)] = 60.0                  # seconds
    # A session whose charger has been disconnected this long is closed by the edge (offline is not
    # inactivity: a disconnected charger queues its messages). A later StopTransaction corrects the close.
    finish_after_offline: Annotated[float, Field(ge=1, le=MINUTES_PER_MONTH)] = 10080.0   # minutes (7 days)


class PowerLevelConfig(_Strict):
    max_kw: Annotated[Decimal, Field(gt=0, le=2000)]
    price_per_minute: Money


_TYPE_FIELDS: dict[str, set[str]] = {
    "free": set(),
    "flat": {"price_per_session"},
    "duration-energy": {"connection_fee", "price_per_kwh", "price_per_minute"},
    "duration-energy-tod": {"connection_fee", "price_per_kwh", "price_per_minute", "night_price_per_kwh",
                            "night_price_per_minute", "day_starts", "night_starts"},
    "power-levels": {"connection_fee", "power_levels"},
}
_PRICE_FIELDS = set().union(*_TYPE_FIELDS.values())


def _clock_time(text: str) -> time:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day like '07:00'") from None


class TariffConfig(_Strict):
    id: ItemId
    name: str = ""
    type: TariffType
    price_per_session: Money = Decimal(0)
    connection_fee: Money = Decimal(0)
    price_per_kwh: Money = Decimal(0)
    price_per_minute: Money = Decimal(0)
    night_price_per_kwh: Money = Decimal(0)
    night_price_per_minute: Money = Decimal(0)
    day_starts: str | None = None
    night_starts: str | None = None
    power_levels: list[PowerLevelConfig] = []
    blocking_fee_per_minute: Money = Decimal(0)
    blocking_after_minutes: Minutes = Decimal(0)
    max_minutes: Annotated[Minutes, Field(gt=0)] | None = None
    max_kwh: Kwh | None = None
    # Billing features, any type (docs/tariffs.md): per-session bounds, billing steps, idle fee, auto-stop.
    min_price: Money | None = None
    max_price: Money | None = None
    time_step_minutes: Annotated[Decimal, Field(gt=0, le=1440)] | None = None
    energy_step_kwh: Annotated[Decimal, Field(gt=0, le=1000)] | None = None
    idle_fee_per_minute: Money = Decimal(0)
    idle_grace_minutes: Minutes = Decimal(0)
    auto_stop_price: Annotated[Decimal, Field(gt=0, le=100_000)] | None = None
    # Restrictions: whom this tariff is for (a base tariff has none).
    user_groups: list[str] = []
    ad_hoc: bool = False
    free_vend: bool = False

    @field_validator("day_starts", "night_starts")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is not None:
            _clock_time(value)
        return value

    @model_validator(mode="after")
    def _fits_type(self) -> "TariffConfig":
        given = {name for name in _PRICE_FIELDS if name in self.model_fields_set}
        foreign = sorted(given - _TYPE_FIELDS[self.type])
        if foreign:
            raise ValueError(f"{', '.join(foreign)} do(es) not apply to a {self.type} tariff")
        if self.type == "duration-energy-tod":
            if self.day_starts is None or self.night_starts is None:
                raise ValueError("a duration-energy-tod tariff needs day_starts and night_starts, "
                                 "e.g. '07:00' and '22:00'")
            if _clock_time(self.day_starts) == _clock_time(self.night_starts):
                raise ValueError("day_starts and night_starts must differ")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        if self.type == "power-levels":
            ceilings = [level.max_kw for level in self.power_levels]
            if not ceilings or ceilings != sorted(set(ceilings)):
                raise ValueError("power_levels: give at least one level, in rising max_kw, each max_kw once")
        return self

    def restrictions(self, named_by: Iterable[str] = ()) -> Restrictions:
        return Restrictions(frozenset(self.user_groups) | frozenset(named_by), self.ad_hoc, self.free_vend)

    def to_tariff(self) -> Tariff:
        tod = self.type == "duration-energy-tod"
        return Tariff(
            id=self.id, type=self.type, name=self.name, per_session=self.price_per_session,
            connection_fee=self.connection_fee, rates=Rates(self.price_per_kwh, self.price_per_minute),
            night_rates=Rates(self.night_price_per_kwh, self.night_price_per_minute),
            day_starts=_clock_time(self.day_starts) if tod and self.day_starts else time(6, 0),
            night_starts=_clock_time(self.night_starts) if tod and self.night_starts else time(22, 0),
            power_levels=tuple(PowerLevel(p.max_kw, p.price_per_minute) for p in self.power_levels),
            blocking_per_minute=self.blocking_fee_per_minute, blocking_after_minutes=self.blocking_after_minutes,
            max_minutes=self.max_minutes, max_kwh=self.max_kwh, restrictions=self.restrictions(),
            min_price=self.min_price, max_price=self.max_price, time_step_minutes=self.time_step_minutes,
            energy_step_kwh=self.energy_step_kwh, idle_per_minute=self.idle_fee_per_minute,
            idle_grace_minutes=self.idle_grace_minutes, auto_stop_price=self.auto_stop_price)


class TariffGroupConfig(_Strict):
    id: ItemId
    name: str = ""
    base: str
    # Restricted tariffs, top to bottom: of those that match a session, the lowest applies.
    tariffs: list[str] = []
    # "CP-1" for every connector of a charger, or { charger = "CP-1", connector = 2 }.
    evses: list[str | EvseRef] = Field(min_length=1)

    def evse_refs(self) -> list[Evse]:
        return [Evse(e) if isinstance(e, str) else Evse(e.charger, e.connector) for e in self.evses]


def _named_by(user_groups: list[Any]) -> dict[str, list[str]]:
    """tariff id -> the user groups whose `tariff` key names it."""
    named: dict[str, list[str]] = {}
    for group in user_groups:
        if group.tariff:
            named.setdefault(group.tariff, []).append(group.id)
    return named


def check_tariffs(tariffs: list[TariffConfig], groups: list[TariffGroupConfig], user_groups: list[Any],
                  chargers: list[str]) -> list[str]:
    """Cross-reference problems, one line each naming the item; [] when all is well."""
    problems: list[str] = []
    by_id = {t.id: t for t in tariffs}
    known_groups = {g.id for g in user_groups}
    named = _named_by(user_groups)
    for items, what in ((tariffs, "tariffs"), (groups, "tariff_groups")):
        problems += [f"{what} {repeated(a, b, DQ)}: defined twice" for a, b in same_ids(i.id for i in items)]
    for t in tariffs:
        for name in t.user_groups:
            if name not in known_groups:
                problems.append(f'tariffs "{t.id}": user group "{name}" does not exist')
    for g in user_groups:
        # Without any [[tariffs]] the key is the free label it was before tariffs existed.
        if g.tariff and tariffs and g.tariff not in by_id:
            problems.append(f'user_groups "{g.id}": tariff "{g.tariff}" does not exist (see [[tariffs]])')
    placed: dict[tuple[str, int | None], str] = {}
    for group in groups:
        label = f'tariff_groups "{group.id}"'
        base = by_id.get(group.base)
        if base is None:
            problems.append(f'{label}: base tariff "{group.base}" does not exist')
        elif not base.restrictions().empty():     # a user group naming it gets it anyway: no restriction
            problems.append(f'{label}: base tariff "{base.id}" has restrictions; the base applies to everybody '
                            "(attach the restricted tariff under `tariffs` instead)")
        for index, name in enumerate(group.tariffs):
            tariff = by_id.get(name)
            if tariff is None:
                problems.append(f'{label}: tariff "{name}" does not exist')
            elif name == group.base or name in group.tariffs[:index]:
                problems.append(f'{label}: tariff "{name}" is listed twice')
            elif tariff.restrictions(named.get(name, ())).empty():
                problems.append(f'{label}: tariff "{name}" has no restrictions, so it would never apply '
                                "(give it user_groups, ad_hoc or free_vend, or make it the base)")
        for evse in group.evse_refs():
            where = evse.charger_id + (f" connector {evse.connector_id}" if evse.connector_id else "")
            if evse.charger_id not in chargers:
                problems.append(f'{label}: charger "{evse.charger_id}" is not a charger of this site')
            elif (evse.charger_id, evse.connector_id) in placed:
                problems.append(f'{label}: {where} is already in tariff group '
                                f'"{placed[(evse.charger_id, evse.connector_id)]}"')
            placed[(evse.charger_id, evse.connector_id)] = group.id
    return problems


def tariff_book(tariffs: list[TariffConfig], groups: list[TariffGroupConfig]) -> TariffBook:
    """The plain data pricing works on. Expects a config that passed check_tariffs.
    User groups' `tariff` keys are not baked in: they live in the authorization
    model, which can change while the edge runs, and are given per lookup."""
    built = {t.id: t.to_tariff() for t in tariffs}
    return TariffBook(
        groups={g.id: TariffGroup(g.id, built[g.base], tuple(built[n] for n in g.tariffs), g.name) for g in groups},
        evses=tuple((evse, g.id) for g in groups for evse in g.evse_refs()))
