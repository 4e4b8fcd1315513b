"""The plausibility check (seed 003's statuses) as a table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edge.cdr.plausibility import Facts, Thresholds, check

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


def facts(minutes=60.0, wh=10_000.0, start_offset_s=0.0, max_w=22_000.0, charging_s=None, duplicate=None):
    start = T0 + timedelta(seconds=start_offset_s)
    stop = start + timedelta(minutes=minutes)
    return Facts(start, T0, stop, wh, charging_s if charging_s is not None else max(minutes * 60, 0), max_w,
                 duplicate)


@pytest.mark.parametrize("f, status, reason", [
    (facts(), "Successful", None),
    (facts(start_offset_s=3600), "Error", "start time in the future"),
    (facts(start_offset_s=299), "Successful", None),                # within the clock tolerance
    (facts(wh=-5), "Error", "negative energy"),
    (facts(minutes=-10), "Error", "negative session duration"),
    (facts(wh=25_000), "Error", "power implausible for EVSE"),      # 25 kW average on a 22 kW EVSE
    (facts(wh=24_000), "Successful", None),                          # within +10 %
    (facts(wh=11_000, charging_s=1200), "Error", "power implausible"),  # 33 kW while actually charging
    (facts(duplicate="abc"), "Error", "already exists (record abc)"),
    (facts(wh=199), "Exclusion", "consumption too low"),
    (facts(wh=0), "Exclusion", "consumption too low"),
    (facts(wh=5_000_001, minutes=20_000, max_w=350_000), "Exclusion", "consumption too high"),
    (facts(minutes=0.9, wh=300), "Exclusion", "duration too short"),
    (facts(minutes=14 * 24 * 60 + 1), "Exclusion", "duration too long"),
    (facts(wh=-5, minutes=0.5), "Error", "negative energy"),         # an error outranks an exclusion
])
def test_statuses(f, status, reason):
    verdict = check(f)
    assert verdict.status == status
    if reason:
        assert any(reason in r for r in verdict.reasons), verdict.reasons
    else:
        assert verdict.reasons == ()


def test_thresholds_are_configurable():
    assert check(facts(wh=199), Thresholds(min_energy_kwh=0.1)).status == "Successful"
    assert check(facts(minutes=30), Thresholds(min_duration_s=3600)).status == "Exclusion"


def test_a_trickle_after_a_full_charge_is_not_power_implausible():
    # Issue 14 item 8: 11 kWh at 11 kW for 1 h, then 45 W for 30 h on an 11 kW EVSE. The old check
    # took all 12.35 kWh over the 1 h of charging: 12.35 kW > 11 kW + 10 %, an Error. Energy and
    # time of the same (charging) intervals: 11 kWh / 1 h = 11 kW, plausible.
    trickle = Facts(T0, T0, T0 + timedelta(hours=31), 12_350, 3600, 11_000, None, charging_wh=11_000)
    assert check(trickle).status == "Successful"
    assert check(Facts(T0, T0, T0 + timedelta(hours=31), 12_350, 3600, 11_000, None, charging_wh=12_200)
                 ).status == "Error"                                 # 12.2 kW > 12.1 kW: still caught
