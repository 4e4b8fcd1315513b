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
CHARGING_FROM_W = 50.0              # below this a car is idle (standby draw, pilot only)
# A reading that differs from meterStart/meterStop by more than this is worth a note.
END_READING_TOLERANCE_WH = 10.0
# Small register steps between readings close in time are timestamp jitter, not jumps.
JUMP_FLOOR_WH = 100.0
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


def _wh(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(WH, ROUND_HALF_EVEN)


def energy_curve(start: datetime, meter_start: float, stop: datetime, meter_stop: float,
                 readings: list[Reading], max_power_w: float) -> Curve:
    """The cleaned register curve. `readings`: Energy.Active.Import.Register in
    arrival order. A stop before the start or a meterStop below meterStart
    gives a flat curve (the plausibility check names those)."""
    stop = max(start, stop)
    low, high = _wh(meter_start), _wh(max(meter_start, meter_stop))
    tolerance = _wh(END_READING_TOLERANCE_WH)
    problems: list[str] = []
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
                if last <= _wh(r.value * float(factor)) <= high:
                    value = _wh(r.value * float(factor))
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
        seconds = (max(r.at, start) - last_at).total_seconds()
        step = float(value - last)
        if step > JUMP_FLOOR_WH and (seconds <= 0 or step * 3600 / seconds > max_power_w * 1.1):
            problems.append(f"{where} jumps {step:g} Wh in {max(seconds, 0):g} s, more than the EVSE can "
                            "deliver; ignored")
            continue
        at = min(max(r.at, start), stop)
        kept.append((at, value))
        last_at, last = at, value
    return Curve(((start, low), *kept, (stop, high)), tuple(problems))


@dataclass(frozen=True)
class Usage:
    """How the session used the EVSE: from the curve and any power readings."""
    charging_s: float
    max_power_w: float

    @staticmethod
    def of(curve: Curve, power: list[Reading]) -> "Usage":
        """An interval counts as charging when the energy rose at CHARGING_FROM_W
        or more across it, or the latest power reading says so."""
        inside = sorted((r for r in power if curve.start <= r.at <= curve.stop and r.unit in (None, "W")),
                        key=lambda r: r.at)
        edges = sorted({p[0] for p in curve.points} | {r.at for r in inside})
        charging, peak, j, drawing = 0.0, 0.0, 0, None
        for begin, end in zip(edges, edges[1:]):
            while j < len(inside) and inside[j].at <= begin:
                drawing = inside[j].value
                j += 1
            seconds = (end - begin).total_seconds()
            average = float(curve.energy_between(begin, end)) * 3600 / seconds
            if seconds >= 1:
                peak = max(peak, average)
            if average >= CHARGING_FROM_W or (drawing is not None and drawing >= CHARGING_FROM_W):
                charging += seconds
        peak = max([peak] + [r.value for r in inside])
        return Usage(charging, peak)


def last_known(start: datetime, meter_start: float, readings: list[Reading]) -> tuple[datetime, float]:
    """Where a session the charger never stopped ended, as far as its readings
    tell: the latest register that continues the rise from meterStart (the
    start itself when there is none)."""
    at, register = start, float(meter_start)
    for r in sorted(readings, key=lambda r: r.at):
        if r.unit in (None, "Wh") and r.value >= register and r.at >= at:
            at, register = r.at, r.value
    return at, register
