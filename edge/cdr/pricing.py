"""What a session costs under a tariff (pure; time passed in, no I/O).

Prices are gross (VAT included), as operators enter them. Every component is
computed exactly in Decimal, from Decimal energy and whole-microsecond time; the
total is rounded once, at the end, to the currency's minor unit (ISO 4217: cents
for EUR, none for JPY, fils for KWD), and split into net and VAT from the rounded
gross, so net + VAT = gross exactly. Quantities are never negative, nor are
prices (the config refuses them), so a price is never negative whatever the
meter said. The power level is decided exactly (docs/tariffs.md "Power levels").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from edge.cdr.energy import Curve, Usage
from edge.cdr.money import minor_unit, plain, quantum, rounded, steps_up
from edge.cdr.tariffs import ZERO, Rates, Tariff
from edge.clock import iso

# A time-of-day split makes two parts a day: a session longer than this (a charger clock that was
# never set, a stop that never came) is not priced day by day but refused, so pricing one record
# costs microseconds to milliseconds, never minutes of the event loop.
MAX_SPLIT_DAYS = 400
MINUTE = Decimal("0.0001")          # time is priced to 6 ms; the sum is rounded to the minor unit anyway
KWH = Decimal("0.000001")
TIME_KINDS = ("time", "blocking", "idle")


class Unpriceable(ValueError):
    """The session cannot be priced under this tariff (its record is quarantined, not made)."""


@dataclass(frozen=True)
class Component:
    # connection-fee | session | energy | time | blocking | idle | minimum-price | maximum-price
    kind: str
    quantity: Decimal        # kWh, minutes or 1 (fee); after the billing step
    unit: str                # kWh | min | session
    unit_price: Decimal      # gross
    amount: Decimal          # gross, exact (not rounded); negative only for a maximum-price cap
    period: str | None = None   # day | night (time-of-day tariffs)
    start: datetime | None = None
    end: datetime | None = None

    def as_dict(self, places: int = 2) -> dict:
        """Numbers as plain decimal text ('0', '3.90'; never '0E-8'), amounts with at least the
        currency's minor digits."""
        return {"kind": self.kind, "period": self.period, "quantity": plain(self.quantity), "unit": self.unit,
                "unit_price": plain(self.unit_price), "amount": plain(self.amount, places),
                "start": iso(self.start) if self.start else None, "end": iso(self.end) if self.end else None}


@dataclass(frozen=True)
class Price:
    currency: str
    vat_percent: Decimal
    gross: Decimal           # rounded to the currency's minor unit
    net: Decimal
    vat: Decimal
    components: tuple[Component, ...]
    billed: bool = True      # False: the record is not billed (see `not_billed`); the amounts are 0
    computed: Decimal | None = None     # what the tariff gives, rounded: = gross when billed

    @property
    def places(self) -> int:
        return minor_unit(self.currency)


def minutes(begin: datetime, end: datetime) -> Decimal:
    """Elapsed minutes (real time, so a DST day's local clock jump does not count)."""
    delta = max(end - begin, timedelta(0))
    micro = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (Decimal(micro) / 60_000_000).quantize(MINUTE, ROUND_HALF_UP)


def kwh(wh: Decimal) -> Decimal:
    return (max(ZERO, wh) / 1000).quantize(KWH, ROUND_HALF_UP)


def day_night_parts(begin: datetime, end: datetime, day_starts: time, night_starts: time,
                    tz: ZoneInfo) -> list[tuple[str, datetime, datetime]]:
    """Split [begin, end) at the day and night start times in the site's time zone.

    Boundaries are local wall times turned into instants day by day, so a DST
    day has its real length. A start time the spring jump skips takes effect
    as the local clock would have read it without the jump (zoneinfo's fold=0).
    """
    if end <= begin:
        return [(_period(begin, day_starts, night_starts, tz), begin, begin)]
    if end - begin > timedelta(days=MAX_SPLIT_DAYS):
        raise Unpriceable(f"the session lasts {(end - begin).days} days ({iso(begin)} to {iso(end)}); a time-of-day "
                          f"tariff prices at most {MAX_SPLIT_DAYS} days")
    first, last = begin.astimezone(tz).date(), end.astimezone(tz).date()
    cuts = set()
    for offset in range(-1, (last - first).days + 2):
        for at in (day_starts, night_starts):
            try:
                moment = _instant(first + timedelta(days=offset), at, tz)
            except OverflowError:       # a day beyond year 1 or 9999 has no boundary inside the session
                continue
            if begin < moment < end:
                cuts.add(moment)
    edges = [begin, *sorted(cuts), end]
    return [(_period(a, day_starts, night_starts, tz), a, b) for a, b in zip(edges, edges[1:])]


def split_energy(curve: Curve, tariff: Tariff, tz: ZoneInfo) -> list[tuple[str, datetime, datetime, Decimal]]:
    """The day/night parts with the energy of each: the register at every cut,
    differenced, so the parts add up to the session's energy exactly."""
    parts = day_night_parts(curve.start, curve.stop, tariff.day_starts, tariff.night_starts, tz)
    registers = [curve.points[0][1], *(curve.energy_at(b) for _, _, b in parts[:-1]), curve.points[-1][1]]
    return [(period, a, b, registers[i + 1] - registers[i]) for i, (period, a, b) in enumerate(parts)]


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(timezone.utc)


def _period(moment: datetime, day_starts: time, night_starts: time, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz).time()
    if day_starts <= night_starts:
        return "day" if day_starts <= local < night_starts else "night"
    return "night" if night_starts <= local < day_starts else "day"


def _rated(rates: Rates, energy_wh: Decimal, begin: datetime, end: datetime,
           period: str | None = None) -> list[Component]:
    out = []
    quantity = kwh(energy_wh)
    if rates.per_kwh:
        out.append(Component("energy", quantity, "kWh", rates.per_kwh, quantity * rates.per_kwh, period, begin, end))
    if rates.per_minute:
        spent = minutes(begin, end)
        out.append(Component("time", spent, "min", rates.per_minute, spent * rates.per_minute, period, begin, end))
    return out


def _fee(kind: str, amount: Decimal) -> list[Component]:
    return [Component(kind, Decimal(1), "session", amount, amount)] if amount else []


def level_price(tariff: Tariff, usage: Usage | Decimal) -> Decimal:
    """The per-minute price of the lowest power level whose max average power the session stayed
    at or under (average <= max_kw, inclusive, decided exactly); above them all, the highest level's.
    `usage`: the session's usage, or an average power in kW."""
    for level in tariff.power_levels:
        if usage.average_at_most(level.max_kw) if isinstance(usage, Usage) else usage <= level.max_kw:
            return level.per_minute
    return tariff.power_levels[-1].per_minute if tariff.power_levels else ZERO


def idle_component(tariff: Tariff, curve: Curve, usage: Usage | Decimal) -> list[Component]:
    """The idle fee: from the end of the last interval the car drew power in (the session's start
    if it never did), plus the grace time, until the stop. Pauses in between are not idle time."""
    if not tariff.idle_per_minute or not isinstance(usage, Usage):
        return []
    drawn_until = usage.charging_until or curve.start
    if minutes(drawn_until, curve.stop) <= tariff.idle_grace_minutes:
        return []
    from_ = drawn_until + timedelta(minutes=float(tariff.idle_grace_minutes))
    spent = minutes(from_, curve.stop)
    return [Component("idle", spent, "min", tariff.idle_per_minute, spent * tariff.idle_per_minute, None,
                      from_, curve.stop)]


def components(tariff: Tariff, curve: Curve, usage: Usage | Decimal, tz: ZoneInfo) -> list[Component]:
    """The parts of the price before the per-session minimum and maximum, billing steps applied."""
    begin, end = curve.start, curve.stop
    parts: list[Component] = []
    if tariff.type == "flat":
        parts += _fee("session", tariff.per_session)
    elif tariff.type == "duration-energy":
        parts += _fee("connection-fee", tariff.connection_fee)
        parts += _rated(tariff.rates, curve.energy_wh, begin, end)
    elif tariff.type == "duration-energy-tod":
        parts += _fee("connection-fee", tariff.connection_fee)
        for period, a, b, energy in split_energy(curve, tariff, tz):
            parts += _rated(tariff.rates if period == "day" else tariff.night_rates, energy, a, b, period)
    elif tariff.type == "power-levels":
        parts += _fee("connection-fee", tariff.connection_fee)
        parts += _rated(Rates(per_minute=level_price(tariff, usage)), ZERO, begin, end)
    # Compared in minutes first: begin + a huge blocking_after_minutes would overflow the calendar.
    if tariff.blocking_per_minute and minutes(begin, end) > tariff.blocking_after_minutes:
        from_ = begin + timedelta(minutes=float(tariff.blocking_after_minutes))
        if end > from_:
            spent = minutes(from_, end)
            parts.append(Component("blocking", spent, "min", tariff.blocking_per_minute,
                                   spent * tariff.blocking_per_minute, None, from_, end))
    parts += idle_component(tariff, curve, usage)
    for kind in TIME_KINDS:
        parts = _stepped(parts, kind, tariff.time_step_minutes)
    return _stepped(parts, "energy", tariff.energy_step_kwh)


def _stepped(parts: list[Component], kind: str, step: Decimal | None) -> list[Component]:
    """Bill the session's total quantity of `kind` per started `step`: the total is rounded up
    once, and what that adds goes onto the kind's last part (a time-of-day split must not round
    up each part)."""
    mine = [i for i, c in enumerate(parts) if c.kind == kind]
    if not step or not mine:
        return parts
    total = sum((parts[i].quantity for i in mine), ZERO)
    extra = steps_up(total, step) - total
    if not extra:
        return parts
    last = parts[mine[-1]]
    quantity = last.quantity + extra
    return [*parts[:mine[-1]], replace(last, quantity=quantity, amount=quantity * last.unit_price),
            *parts[mine[-1] + 1:]]


def bounded(tariff: Tariff, parts: list[Component]) -> list[Component]:
    """The per-session minimum and maximum, as a line of their own so the parts still add up."""
    exact = sum((c.amount for c in parts), ZERO)
    if tariff.min_price is not None and exact < tariff.min_price:
        gap = tariff.min_price - exact
        return [*parts, Component("minimum-price", Decimal(1), "session", gap, gap)]
    if tariff.max_price is not None and exact > tariff.max_price:
        cut = tariff.max_price - exact
        return [*parts, Component("maximum-price", Decimal(1), "session", cut, cut)]
    return parts


def within(tariff: Tariff, gross: Decimal, currency: str) -> Decimal:
    """Rounding never takes a price below the minimum or above the maximum (a bound finer than the
    currency's minor unit is met by rounding toward it: a minimum of 0.005 EUR costs 0.01)."""
    if tariff.min_price is not None and gross < tariff.min_price:
        return tariff.min_price.quantize(quantum(currency), ROUND_CEILING)
    if tariff.max_price is not None and gross > tariff.max_price:
        return tariff.max_price.quantize(quantum(currency), ROUND_FLOOR)
    return gross


def price(tariff: Tariff, curve: Curve, usage: Usage | Decimal, tz: ZoneInfo, currency: str,
          vat_percent: Decimal) -> Price:
    """The price of the session described by `curve` (start, stop, energy) and `usage` (its
    charging intervals; or just an average power in kW) under `tariff`."""
    if isinstance(usage, Decimal):
        usage = max(ZERO, usage)
    parts = bounded(tariff, components(tariff, curve, usage, tz))
    gross = within(tariff, rounded(max(ZERO, sum((c.amount for c in parts), ZERO)), currency), currency)
    net = rounded(gross * 100 / (100 + vat_percent), currency)
    return Price(currency, vat_percent, gross, net, gross - net, tuple(parts), True, gross)


def not_billed(cost: Price) -> Price:
    """A record that is not billed (status Error, Exclusion or Failed) costs nothing: its amounts
    are 0; what the tariff would have charged stays in `computed` and the components, for review."""
    zero = rounded(ZERO, cost.currency)
    return replace(cost, gross=zero, net=zero, vat=zero, billed=False, computed=cost.gross)


def money_fields(cost: Price) -> dict:
    """The money fields of a charge record: amounts as plain decimal text with the currency's
    minor digits ('7.20' EUR, '279' JPY, '1.250' KWD)."""
    return {"currency": cost.currency, "vat_percent": str(cost.vat_percent), "price_net": str(cost.net),
            "vat": str(cost.vat), "price_gross": str(cost.gross),
            "price_components": [c.as_dict(cost.places) for c in cost.components], "billed": cost.billed,
            "price_computed_gross": str(cost.gross if cost.computed is None else cost.computed)}


def price_so_far(tariff: Tariff, start: datetime, now: datetime, meter_start_wh: Decimal | int,
                 register_wh: Decimal | int, tz: ZoneInfo, currency: str, vat_percent: Decimal) -> Decimal:
    """What a running session has cost up to `now`, for the auto-stop (`auto_stop_price`): its
    price as if it stopped now with the latest register, without the per-session minimum (which
    is charged at the end, not reached). Gross, rounded to the minor unit."""
    low = Decimal(meter_start_wh)
    curve = Curve(((start, low), (max(start, now), max(low, Decimal(register_wh)))))
    parts = components(tariff, curve, Usage.of(curve), tz)
    if tariff.max_price is not None:
        parts = bounded(replace(tariff, min_price=None), parts)
    return rounded(max(ZERO, sum((c.amount for c in parts), ZERO)), currency)


def auto_stop_reached(tariff: Tariff, so_far: Decimal) -> bool:
    return tariff.auto_stop_price is not None and so_far >= tariff.auto_stop_price


def auto_stop(tariff: Tariff, started: datetime, meter_start_wh: float, register_wh: float, now: datetime,
              tz: ZoneInfo, currency: str, vat_percent: Decimal) -> str | None:
    """Why a running session must be stopped for its price (seed 004's auto-stop amount), or None."""
    if tariff.auto_stop_price is None:
        return None
    so_far = price_so_far(tariff, started, now, Decimal(repr(float(meter_start_wh))),
                          Decimal(repr(float(register_wh))), tz, currency, vat_percent)
    if not auto_stop_reached(tariff, so_far):
        return None
    return (f"session limit: price {so_far} {currency} reached the auto-stop amount "
            f"{plain(tariff.auto_stop_price, minor_unit(currency))} (tariff {tariff.id})")
