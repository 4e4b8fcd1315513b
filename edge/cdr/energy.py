"""A session's energy over time, from what the charger reported (pure).

Chargers send meter values that go backwards, jump, arrive out of order or
carry the wrong unit. Pricing needs a register that only ever rises from
meterStart to meterStop, so the readings are cleaned here: each one that
cannot be true is left out and said why, never guessed into a negative
price. The start and stop readings (meterStart, meterStop) are the billing
values and are always kept; readings in between only shape the curve, which
decides how energy splits across time-of-day periods and how long the car
actually drew power.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property

from edge.clock import iso

WH = Decimal("0.001")               # the curve's resolution: a milliwatt-hour
CHARGING_FROM_W = Decimal(50)       # W; below this a car is idle (standby draw, pilot only)
# A reading that differs from meterStart/meterStop by more than this is worth a note.
END_READING_TOLERANCE_WH = 10.0
# Small register steps between readings close in time are timestamp jitter, not jumps.
JUMP_FLOOR_WH = Decimal(100)
# Readings this close outside the session still belong to it (clocks and stamps are coarse).
OUTSIDE_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class Reading:
    """One sampled value as journaled: Wh for energy, W for power (kilo units already normalised)."""
    at: datetime
    value: float
    unit: str | None = "Wh"
    context: str = "Sample.Periodic"


@dataclass(frozen=True)
class Curve:
    points: tuple[tuple[datetime, Decimal], ...]   # time-ordered, register never falls; first = start, last = stop
    problems: tuple[str, ...] = ()

    @property
    def start(self) -> datetime:
        return self.points[0][0]

    @property
    def stop(self) -> datetime:
        return self.points[-1][0]

    @property
    def energy_wh(self) -> Decimal:
        return self.points[-1][1] - self.points[0][1]

    def energy_at(self, moment: datetime) -> Decimal:
        """The register at `moment`, linear between readings; monotone in `moment`."""
        points = self.points
        if moment <= points[0][0]:
            return points[0][1]
        if moment >= points[-1][0]:
            return points[-1][1]
        i = bisect_right(self.times, moment)
        (t0, e0), (t1, e1) = points[i - 1], points[i]
        share = Decimal(_us(moment - t0)) / Decimal(_us(t1 - t0))
        return (e0 + (e1 - e0) * share).quantize(WH, ROUND_HALF_EVEN)

    @cached_property
    def times(self) -> tuple[datetime, ...]:
        # Kept once: looking up a moment is then O(log n), and a long session's n lookups O(n log n).
        return tuple(p[0] for p in self.points)

    def energy_between(self, begin: datetime, end: datetime) -> Decimal:
        return self.energy_at(end) - self.energy_at(begin)


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _wh(value: float | Decimal) -> Decimal:
    return _decimal(value).quantize(WH, ROUND_HALF_EVEN)


def energy_curve(start: datetime, meter_start: float, stop: datetime, meter_stop: float,
                 readings: list[Reading], max_power_w: float) -> Curve:
    """The cleaned register curve. `readings`: Energy.Active.Import.Register in
    arrival order. A stop before the start or a meterStop below meterStart
    gives a flat curve (the plausibility check names those)."""
    stop = max(start, stop)
    low, high = _wh(meter_start), _wh(max(meter_start, meter_stop))
    tolerance = _wh(END_READING_TOLERANCE_WH)
    problems: list[str] = []
    ceiling = _decimal(max_power_w) * Decimal("1.1")       # W a register step may not exceed
    # The same reading often comes twice: in MeterValues and again in the StopTransaction's transactionData.
    readings = list({(r.at, r.value): r for r in readings}.values())
    # A Transaction.Begin reading arrives with the stop, after later ones; that is no disorder.
    ordered = [r for r in readings if r.context != "Transaction.Begin"]
    if any(b.at < a.at for a, b in zip(ordered, ordered[1:])):
        problems.append("meter values arrived out of order; used in the order of their timestamps")
    kept: list[tuple[datetime, Decimal]] = []
    last_at, last = start, low
    for r in sorted(readings, key=lambda r: r.at):
        where = f"meter value at {iso(r.at)}"
        if r.unit not in (None, "Wh"):
            problems.append(f"{where} has unit {r.unit!r}, not an energy unit; ignored")
            continue
        # Differences, not start - 60 s: a charger clock at year 1 must not overflow the check.
        if r.at - start < -OUTSIDE_SLACK or r.at - stop > OUTSIDE_SLACK:
            problems.append(f"{where} is outside the session; ignored")
            continue
        if r.context == "Transaction.End" and abs(r.value - meter_stop) > END_READING_TOLERANCE_WH:
            problems.append(f"Transaction.End register {r.value:g} Wh differs from meterStop {meter_stop:g} Wh")
        if r.context == "Transaction.Begin" and abs(r.value - meter_start) > END_READING_TOLERANCE_WH:
            problems.append(f"Transaction.Begin register {r.value:g} Wh differs from meterStart {meter_start:g} Wh")
        value = _wh(r.value)
        if low - tolerance <= value < low or high < value <= high + tolerance:
            value = min(max(value, low), high)      # rounding: meterStart/meterStop are whole Wh
        if not low <= value <= high:
            # A register in kWh labelled Wh reads 1000 times too small, one in Wh
            # labelled kWh (normalised to Wh on arrival) 1000 times too large.
            for factor, said in ((1000, "kWh sent as Wh"), (Decimal("0.001"), "Wh sent as kWh")):
                if last <= _wh(_decimal(r.value) * factor) <= high:
                    value = _wh(_decimal(r.value) * factor)
                    problems.append(f"{where} looks like {said}; read as {value.normalize():f} Wh")
                    break
            else:
                side = "below the session's start register (meter went backwards)" if value < low \
                    else "above meterStop"
                problems.append(f"{where} ({r.value:g} Wh) is {side}; ignored")
                continue
        if value < last:
            problems.append(f"{where} ({r.value:g} Wh) is below the previous {last.normalize():f} Wh "
                            "(meter went backwards); ignored")
            continue
        us = _us(max(r.at, start) - last_at)
        step = value - last
        if step > JUMP_FLOOR_WH and (us <= 0 or step * 3_600_000_000 > ceiling * us):
            problems.append(f"{where} jumps {step.normalize():f} Wh in {max(us, 0) / 1e6:g} s, more than the "
                            "EVSE can deliver; ignored")
            continue
        at = min(max(r.at, start), stop)
        kept.append((at, value))
        last_at, last = at, value
    return Curve(((start, low), *kept, (stop, high)), tuple(problems))


@dataclass(frozen=True)
class Usage:
    """How the session used the EVSE, from the energy curve (and power readings for the peak only).

    One definition of **average power**, used for power-level prices and the plausibility check:
    the energy of the *charging intervals* over the time of the *same* intervals. A charging
    interval is the span between two consecutive points of the cleaned curve (meterStart, the
    kept register readings, meterStop) across which the energy rose at CHARGING_FROM_W or more
    on average. Energy drawn below that (a full car's standby trickle) counts in neither the
    energy nor the time, so it moves the average neither up nor down. Everything is exact:
    Wh as Decimal, time in whole microseconds, so the sums telescope and a constant-power
    session has the same average whatever the MeterValues interval.
    """
    charging_us: int                 # time of the charging intervals, microseconds
    charging_wh: Decimal             # energy of the same intervals
    max_power_w: Decimal
    charging_until: datetime | None  # end of the last charging interval (None: the car never drew power)

    @property
    def charging_s(self) -> float:
        return self.charging_us / 1_000_000

    @property
    def average_w(self) -> Decimal:
        """For display (rounded by the caller); decisions use `average_at_most`, which is exact."""
        if self.charging_us <= 0:
            return Decimal(0)
        return self.charging_wh * 3600 * 1_000_000 / self.charging_us

    def average_at_most(self, kw: Decimal) -> bool:
        """average power <= `kw`, decided exactly (by cross-multiplying, no division):
        wh / h <= kw * 1000  <=>  wh * 3600e6 <= kw * 1000 * us."""
        return self.charging_wh * 3_600_000_000 <= kw * 1000 * self.charging_us

    @staticmethod
    def of(curve: Curve, power: list[Reading] = ()) -> "Usage":
        charging_us, charging_wh, peak, until = 0, Decimal(0), Decimal(0), None
        for (begin, e0), (end, e1) in zip(curve.points, curve.points[1:]):
            us, wh = _us(end - begin), e1 - e0
            if us <= 0:
                if wh > 0:      # a small step at one instant (stamps are coarse): energy, no time
                    charging_wh += wh
                continue
            if us >= 1_000_000:
                peak = max(peak, wh * 3_600_000_000 / us)
            if wh * 3_600_000_000 >= CHARGING_FROM_W * us:      # wh / h >= 50 W, exactly
                charging_us += us
                charging_wh += wh
                until = end
        inside = [_decimal(r.value) for r in power if curve.start <= r.at <= curve.stop and r.unit in (None, "W")]
        return Usage(charging_us, charging_wh, max([peak, *inside]), until)


def _decimal(value: float | Decimal) -> Decimal:
    """A sample value as the decimal the charger wrote: the journal keeps it as a float, whose
    shortest repr is that decimal (up to 15 significant digits, far more than any meter has)."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def last_known(start: datetime, meter_start: float, readings: list[Reading]) -> tuple[datetime, float]:
    """Where a session the charger never stopped ended, as far as its readings
    tell: the latest register that continues the rise from meterStart (the
    start itself when there is none)."""
    at, register = start, float(meter_start)
    for r in sorted(readings, key=lambda r: r.at):
        if r.unit in (None, "Wh") and r.value >= register and r.at >= at:
            at, register = r.at, r.value
    return at, register
