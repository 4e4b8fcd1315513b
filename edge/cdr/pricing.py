"""What a session costs under a tariff (pure; time passed in, no I/O).

Prices are gross (VAT included), as operators enter them. Every component is
computed exactly in Decimal; the total is rounded to cents once, at the end,
and split into net and VAT from the rounded gross, so net + VAT = gross to the
cent. Quantities are never negative, nor are prices (the config refuses
them), so a price is never negative whatever the meter said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from edge.cdr.energy import Curve
from edge.cdr.tariffs import ZERO, Rates, Tariff
from edge.clock import iso

CENT = Decimal("0.01")
# A time-of-day split makes two parts a day: a session longer than this (a charger clock that was
# never set, a stop that never came) is not priced day by day but refused, so pricing one record
# costs microseconds to milliseconds, never minutes of the event loop.
MAX_SPLIT_DAYS = 400
MINUTE = Decimal("0.0001")          # time is priced to 6 ms; the sum is rounded to cents anyway
KWH = Decimal("0.000001")


class Unpriceable(ValueError):
    """The session cannot be priced under this tariff (its record is quarantined, not made)."""


@dataclass(frozen=True)
class Component:
    kind: str                # connection-fee | session | energy | time | blocking
    quantity: Decimal        # kWh, minutes or 1 (fee)
    unit: str                # kWh | min | session
    unit_price: Decimal      # gross
    amount: Decimal          # gross, not rounded
    period: str | None = None   # day | night (time-of-day tariffs)
    start: datetime | None = None
    end: datetime | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "period": self.period, "quantity": str(self.quantity), "unit": self.unit,
                "unit_price": str(self.unit_price), "amount": str(self.amount),
                "start": iso(self.start) if self.start else None, "end": iso(self.end) if self.end else None}


@dataclass(frozen=True)
class Price:
    currency: str
    vat_percent: Decimal
    gross: Decimal           # rounded to cents
    net: Decimal
    vat: Decimal
    components: tuple[Component, ...]


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


def level_price(tariff: Tariff, average_kw: Decimal) -> Decimal:
    """The per-minute price of the lowest power level whose max average power
    the session stayed at or under; above them all, the highest level's."""
    for level in tariff.power_levels:
        if average_kw <= level.max_kw:
            return level.per_minute
    return tariff.power_levels[-1].per_minute if tariff.power_levels else ZERO


def components(tariff: Tariff, curve: Curve, average_kw: Decimal, tz: ZoneInfo) -> list[Component]:
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
        parts += _rated(Rates(per_minute=level_price(tariff, average_kw)), ZERO, begin, end)
    # Compared in minutes first: begin + a huge blocking_after_minutes would overflow the calendar.
    if tariff.blocking_per_minute and minutes(begin, end) > tariff.blocking_after_minutes:
        from_ = begin + timedelta(minutes=float(tariff.blocking_after_minutes))
        if end > from_:
            spent = minutes(from_, end)
            parts.append(Component("blocking", spent, "min", tariff.blocking_per_minute,
                                   spent * tariff.blocking_per_minute, None, from_, end))
    return parts


def price(tariff: Tariff, curve: Curve, average_kw: Decimal, tz: ZoneInfo, currency: str,
          vat_percent: Decimal) -> Price:
    """The price of the session described by `curve` (start, stop, energy) under `tariff`."""
    parts = components(tariff, curve, max(ZERO, average_kw), tz)
    exact = sum((c.amount for c in parts), ZERO)
    gross = exact.quantize(CENT, ROUND_HALF_UP)
    net = (gross * 100 / (100 + vat_percent)).quantize(CENT, ROUND_HALF_UP)
    return Price(currency, vat_percent, gross, net, gross - net, tuple(parts))
