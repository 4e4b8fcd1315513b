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


def test_power_readings_count_as_charging_and_give_the_peak():
    c = energy_curve(T0, 0, at(120), 11_000, [Reading(at(60), 11_000)], MAX_W)
    power = [Reading(at(0), 16_000, "W"), Reading(at(60), 20, "W"), Reading(at(90), 7000, "W")]
    usage = Usage.of(c, power)
    assert usage.charging_s == 5400 and usage.max_power_w == 16_000
