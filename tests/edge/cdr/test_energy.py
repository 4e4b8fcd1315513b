"""Cleaning what chargers report: table tests of the energy curve and usage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from edge.cdr.energy import Reading, Usage, energy_curve

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
MAX_W = 22_000


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def curve(readings, meter_stop=12_000, minutes=60, meter_start=1_000):
    return energy_curve(T0, meter_start, at(minutes), meter_stop, readings, MAX_W)


def values(c):
    return [float(e) for _, e in c.points]


def test_clean_readings_are_kept():
    c = curve([Reading(at(20), 4000), Reading(at(40), 8000)])
    assert values(c) == [1000, 4000, 8000, 12000] and c.problems == ()
    assert c.energy_at(at(30)) == D("6000.000")


@pytest.mark.parametrize("readings, expected_values, problem", [
    ([Reading(at(20), 4000), Reading(at(40), 3000)], [1000, 4000, 12000], "below the previous"),
    ([Reading(at(20), 500)], [1000, 12000], "meter went backwards"),
    ([Reading(at(10), 11_000)], [1000, 12000], "jumps 10000 Wh in 600 s"),
    ([Reading(at(40), 8000), Reading(at(20), 4000)], [1000, 4000, 8000, 12000], "out of order"),
    ([Reading(at(30), 6.5)], [1000, 6500, 12000], "looks like kWh sent as Wh"),
    ([Reading(at(30), 6_500_000)], [1000, 6500, 12000], "looks like Wh sent as kWh"),
    ([Reading(at(30), 6500, unit="varh")], [1000, 12000], "not an energy unit"),
    ([Reading(at(90), 6500)], [1000, 12000], "outside the session"),
    ([Reading(at(60), 11_000, context="Transaction.End")], [1000, 11000, 12000], "differs from meterStop"),
    ([Reading(at(0), 900, context="Transaction.Begin")], [1000, 12000], "differs from meterStart"),
])
def test_bad_readings_are_left_out_and_named(readings, expected_values, problem):
    c = curve(readings)
    assert values(c) == expected_values
    assert any(problem in p for p in c.problems), c.problems


def test_negative_energy_and_negative_duration_give_a_flat_curve():
    c = curve([Reading(at(20), 900)], meter_stop=500)
    assert c.energy_wh == 0 and values(c) == [1000, 1000]
    backwards = energy_curve(T0, 1000, T0 - timedelta(minutes=5), 2000, [], MAX_W)
    assert backwards.start == backwards.stop and backwards.energy_wh == 1000


def test_charging_and_idle_time_from_the_energy_curve():
    # 11 kW for an hour, then the car is full and sits for an hour.
    c = energy_curve(T0, 0, at(120), 11_000, [Reading(at(60), 11_000)], MAX_W)
    usage = Usage.of(c, [])
    assert usage.charging_s == 3600 and usage.max_power_w == pytest.approx(11_000)


def test_power_readings_give_the_peak_but_do_not_decide_charging_time():
    # The car drew 11 kWh in the first hour and nothing after; a power sample of 7 kW at 90 min is an
    # instant, not energy: time counts as charging only with the energy of the same interval.
    c = energy_curve(T0, 0, at(120), 11_000, [Reading(at(60), 11_000)], MAX_W)
    power = [Reading(at(0), 16_000, "W"), Reading(at(60), 20, "W"), Reading(at(90), 7000, "W")]
    usage = Usage.of(c, power)
    assert usage.charging_s == 3600 and usage.max_power_w == 16_000
    assert usage.charging_until == at(60)


def test_energy_and_time_of_the_average_come_from_the_same_intervals():
    # Issue 14 item 8: 11 kWh at 11 kW for 1 h, then a 45 W trickle for 30 h (1.35 kWh).
    # Readings every hour. The trickle's energy (45 Wh per hour < 50 W) counts in neither energy
    # nor time: average = 11,000 Wh / 1 h = 11 kW, not 12,350 Wh / 1 h = 12.35 kW.
    readings = [Reading(at(60 * h), 11_000 + 45 * (h - 1)) for h in range(1, 31)]
    c = energy_curve(T0, 0, at(31 * 60), 11_000 + 45 * 30, readings, MAX_W)
    usage = Usage.of(c, [])
    assert (usage.charging_wh, usage.charging_s, usage.average_w) == (D(11_000), 3600, D(11_000))
    assert usage.average_at_most(D(11)) and not usage.average_at_most(D("10.999"))


@pytest.mark.parametrize("count", range(1, 61))
def test_a_constant_power_session_has_one_average_at_every_meter_values_interval(count):
    # Issue 14 item 7: 11.000 kWh in 60 min, MeterValues at `count` equal intervals, registers in
    # whole Wh and stamps in whole milliseconds as chargers send them. Sums of Decimal Wh and whole
    # microseconds telescope: 11,000 Wh over 3,600 s exactly, whatever the count.
    readings = [Reading(T0 + timedelta(milliseconds=round(3_600_000 * i / count)), round(11_000 * i / count))
                for i in range(1, count)]
    usage = Usage.of(energy_curve(T0, 0, at(60), 11_000, readings, MAX_W), [])
    assert usage.charging_wh == 11_000 and usage.charging_us == 3_600_000_000
    assert usage.average_at_most(D(11)) and not usage.average_at_most(D("10.999999"))
