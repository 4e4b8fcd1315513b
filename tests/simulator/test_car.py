"""Table tests for the charging physics (simulator.car)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.car import NO_CURRENT, Car, Meter, ramp, step, target_currents


@pytest.mark.parametrize("offered, car, soc, phases, expected", [
    (32.0, Car(), 20.0, 3, (32.0, 32.0, 32.0)),
    (10.0, Car(), 20.0, 3, (10.0, 10.0, 10.0)),  # the offer limits
    (32.0, Car(max_current=16.0), 20.0, 3, (16.0, 16.0, 16.0)),  # the car limits
    (32.0, Car(phases=1), 20.0, 3, (32.0, 0.0, 0.0)),  # a 1-phase car draws on L1 only
    (32.0, Car(phases=2), 20.0, 3, (32.0, 32.0, 0.0)),
    (16.0, Car(), 20.0, 1, (16.0, 0.0, 0.0)),  # a profile's numberPhases = 1
    (6.0, Car(), 20.0, 3, (6.0, 6.0, 6.0)),
    (5.9, Car(), 20.0, 3, NO_CURRENT),  # below 6 A the car pauses
    (32.0, Car(max_current=5.0), 20.0, 3, NO_CURRENT),
    (32.0, Car(), 100.0, 3, NO_CURRENT),  # full
    (32.0, None, None, 3, NO_CURRENT),  # no car
])
def test_target_currents(offered, car, soc, phases, expected) -> None:
    assert target_currents(offered, car, soc, phases) == expected


SLEW = 32.0 / 4.0  # the full 0-32 A range in 4 s


@pytest.mark.parametrize("current, target, dt, new, amp_seconds", [
    (0.0, 32.0, 1.0, 8.0, 4.0),  # ramping up, not there yet
    (0.0, 32.0, 4.0, 32.0, 64.0),  # exactly there
    (0.0, 32.0, 6.0, 32.0, 64.0 + 64.0),  # there, then flat
    (32.0, 16.0, 1.0, 24.0, 28.0),  # ramping down
    (32.0, 16.0, 3.0, 16.0, 48.0 + 16.0),  # down in 2 s, then 1 s flat
    (16.0, 16.0, 2.0, 16.0, 32.0),
    (10.0, 20.0, 0.0, 10.0, 0.0),
])
def test_ramp(current, target, dt, new, amp_seconds) -> None:
    assert ramp(current, target, dt, SLEW) == pytest.approx((new, amp_seconds))


def test_ramp_without_slew_limit_jumps() -> None:
    assert ramp(0.0, 16.0, 1.0, float("inf")) == (16.0, 16.0)


def test_step_integrates_energy_and_soc() -> None:
    meter = Meter(currents=(16.0, 16.0, 16.0), energy_wh=1000.0, soc=50.0)
    after = step(meter, (16.0, 16.0, 16.0), 3600.0, slew=SLEW, voltage=230.0, capacity_wh=60_000.0)
    assert after.energy_wh == pytest.approx(1000.0 + 230.0 * 48.0)  # 11.04 kWh in one hour
    assert after.soc == pytest.approx(50.0 + 11_040.0 / 60_000.0 * 100.0)


def test_step_energy_covers_the_ramp_exactly() -> None:
    after = step(Meter(soc=20.0), (32.0, 32.0, 0.0), 4.0, slew=SLEW, voltage=230.0)
    assert after.currents == (32.0, 32.0, 0.0)
    assert after.energy_wh == pytest.approx(230.0 * 2 * 64.0 / 3600.0)


def test_a_full_battery_takes_no_more() -> None:
    after = step(Meter(currents=(32.0,) * 3, energy_wh=10.0, soc=99.0), (32.0,) * 3, 3600.0, slew=SLEW,
                 voltage=230.0, capacity_wh=60_000.0)
    assert (after.soc, after.energy_wh, after.currents) == (100.0, pytest.approx(10.0 + 600.0), NO_CURRENT)


def test_no_time_no_change() -> None:
    meter = Meter(currents=(1.0, 2.0, 3.0), energy_wh=5.0, soc=10.0)
    assert step(meter, NO_CURRENT, 0.0, slew=SLEW, voltage=230.0) == meter


@given(current=st.floats(0, 32), target=st.floats(0, 32), dt=st.floats(0, 100), slew=st.floats(0.1, 1000))
def test_ramp_stays_between_start_and_target(current: float, target: float, dt: float, slew: float) -> None:
    new, area = ramp(current, target, dt, slew)
    low, high = min(current, target), max(current, target)
    assert low - 1e-9 <= new <= high + 1e-9
    assert low * dt - 1e-6 <= area <= high * dt + 1e-6
    assert abs(new - current) <= slew * dt + 1e-9  # never faster than the slew rate
