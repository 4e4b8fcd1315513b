"""Properties of pricing and of the energy curve, whatever the charger sends."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from edge.cdr.energy import Reading, Usage, energy_curve
from edge.cdr.pricing import price, split_energy
from edge.cdr.tariffs import PowerLevel, Rates, Tariff

BERLIN = ZoneInfo("Europe/Berlin")
# Spans 2026 including both DST changes in Berlin.
starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                      timezones=st.just(timezone.utc))
money = st.decimals(min_value=0, max_value=5, places=3)
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def sessions(draw):
    """Anything a charger might report, including nonsense."""
    start = draw(starts)
    seconds = draw(st.integers(-3600, 3 * 86_400))
    meter_start = draw(st.integers(0, 10**7))
    meter_stop = meter_start + draw(st.integers(-10**5, 200_000))
    readings = draw(st.lists(st.builds(
        Reading, st.integers(-7200, 4 * 86_400).map(lambda s: start + timedelta(seconds=s)),
        st.floats(-1e7, 1e8, allow_nan=False), st.sampled_from(["Wh", None, "varh"]),
        st.sampled_from(["Sample.Periodic", "Transaction.End", "Transaction.Begin"])), max_size=12))
    max_w = draw(st.sampled_from([3_700.0, 11_000.0, 22_000.0, 350_000.0]))
    return energy_curve(start, meter_start, start + timedelta(seconds=seconds), meter_stop, readings, max_w)


@st.composite
def tariffs(draw):
    kind = draw(st.sampled_from(["free", "flat", "duration-energy", "duration-energy-tod", "power-levels"]))
    day, night = draw(clock_times), draw(clock_times)
    levels = sorted(set(draw(st.lists(st.decimals(min_value="0.5", max_value=400, places=1), min_size=1,
                                      max_size=4))))
    return Tariff(
        "t", kind, per_session=draw(money), connection_fee=draw(money),
        rates=Rates(draw(money), draw(money)), night_rates=Rates(draw(money), draw(money)),
        day_starts=day, night_starts=night if night != day else time((day.hour + 1) % 24),
        power_levels=tuple(PowerLevel(kw, draw(money)) for kw in levels),
        blocking_per_minute=draw(money), blocking_after_minutes=draw(st.decimals(0, 600, places=0)),
        min_price=draw(st.none() | money), max_price=draw(st.none() | st.decimals(5, 50, places=2)),
        time_step_minutes=draw(st.none() | st.sampled_from([D(1), D(15)])),
        energy_step_kwh=draw(st.none() | st.sampled_from([D("0.1"), D(1)])),
        idle_per_minute=draw(money), idle_grace_minutes=draw(st.decimals(0, 60, places=0)))


@settings(max_examples=300, deadline=None)
@given(tariff=tariffs(), curve=sessions(), average_kw=st.decimals(min_value=-5, max_value=500, places=3),
       vat=st.decimals(min_value=0, max_value=30, places=1))
def test_a_price_is_never_negative(tariff, curve, average_kw, vat):
    p = price(tariff, curve, average_kw, BERLIN, "EUR", vat)
    assert p.gross >= 0 and p.net >= 0 and p.vat >= 0
    assert p.net + p.vat == p.gross
    assert all(c.quantity >= 0 and (c.amount >= 0 or c.kind == "maximum-price") for c in p.components)
    usage = Usage.of(curve)
    q = price(tariff, curve, usage, BERLIN, "EUR", vat)
    assert q.gross >= 0 and q.net + q.vat == q.gross
    if tariff.min_price is not None:
        assert q.gross >= tariff.min_price
    if tariff.max_price is not None and (tariff.min_price is None or tariff.min_price <= tariff.max_price):
        assert q.gross <= tariff.max_price


@settings(max_examples=200, deadline=None)
@given(tariff=tariffs(), minutes=st.integers(1, 600), energies=st.lists(st.integers(0, 200_000), min_size=2,
                                                                       max_size=2))
def test_an_energy_price_never_falls_when_more_energy_was_drawn(tariff, minutes, energies):
    # For tariffs priced by energy and time (no idle fee: a car that drew less may sit idle longer).
    tariff = replace(tariff, type="duration-energy", idle_per_minute=D(0))
    start = datetime(2026, 6, 1, 8, tzinfo=timezone.utc)
    less, more = sorted(energies)
    prices = [price(tariff, c, Usage.of(c), BERLIN, "EUR", D(19)).gross
              for c in (energy_curve(start, 0, start + timedelta(minutes=minutes), wh, [], 350_000.0)
                        for wh in (less, more))]
    assert prices[0] <= prices[1]


@settings(max_examples=300, deadline=None)
@given(watts=st.integers(1_000, 50_000), minutes=st.integers(10, 600), count=st.integers(1, 60),
       jitter=st.lists(st.integers(-500, 500), min_size=60, max_size=60), ceiling=st.integers(1_000, 50_000))
def test_the_band_decision_does_not_depend_on_the_interval_count_at_constant_power(watts, minutes, count, jitter,
                                                                                  ceiling):
    # Constant power, MeterValues at `count` equal intervals (at least 10 s apart), registers in whole
    # Wh read at the true moment, stamps off by up to +-500 ms: the level is the one of meterStart
    # and meterStop alone (energy / duration), at or under the level's edge exactly as decided there.
    start = datetime(2026, 6, 1, 8, tzinfo=timezone.utc)
    total_ms = minutes * 60_000
    if total_ms / count < 10_000:
        count = max(1, total_ms // 10_000)
    energy = round(watts * minutes / 60)
    readings = [Reading(start + timedelta(milliseconds=total_ms * i // count + jitter[i]),
                        round(energy * i / count)) for i in range(1, count)]
    stop = start + timedelta(minutes=minutes)
    sampled = Usage.of(energy_curve(start, 0, stop, energy, readings, 350_000.0))
    alone = Usage.of(energy_curve(start, 0, stop, energy, [], 350_000.0))
    edge = D(ceiling) / 1000
    assert sampled.average_at_most(edge) == alone.average_at_most(edge) == (energy * 60 <= edge * 1000 * minutes)


@settings(max_examples=300, deadline=None)
@given(curve=sessions(), day=clock_times, night=clock_times)
def test_splitting_at_any_boundary_keeps_the_energy_total(curve, day, night):
    tariff = Tariff("t", "duration-energy-tod", day_starts=day,
                    night_starts=night if night != day else time((day.hour + 1) % 24))
    parts = split_energy(curve, tariff, BERLIN)
    assert sum(e for *_, e in parts) == curve.energy_wh
    assert all(e >= 0 for *_, e in parts)
    assert parts[0][1] == curve.start and parts[-1][2] == curve.stop
    assert all(a[2] == b[1] for a, b in zip(parts, parts[1:]))       # no gap, no overlap
    assert sum(((b - a) for _, a, b, _ in parts), timedelta()) == curve.stop - curve.start


@settings(max_examples=300, deadline=None)
@given(curve=sessions())
def test_the_curve_never_falls_and_usage_fits_the_session(curve):
    registers = [e for _, e in curve.points]
    assert registers == sorted(registers) and curve.energy_wh >= 0
    assert [t for t, _ in curve.points] == sorted(t for t, _ in curve.points)
    usage = Usage.of(curve, [])
    assert 0 <= usage.charging_s <= (curve.stop - curve.start).total_seconds() + 1e-6
    assert usage.max_power_w >= 0
