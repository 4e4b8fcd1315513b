"""The commissioning checks over plain facts."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from edge.commission.checks import charger_checks, clock_offset, failed, meter_checks

GOOD = dict(reachable=True, problem=None, voltage=(230, 231, 229), current=(10, 5, 2),
            power=(2300, 1150, 460), frequency=50.0, reads_frequency=True)


def by_name(checks):
    return {c.name.split(": ")[1]: c for c in checks}


def test_a_healthy_meter_passes():
    checks = meter_checks("grid", **GOOD)
    assert not failed(checks) and {c.status for c in checks} == {"pass"}


@pytest.mark.parametrize("voltage,status", [((206.9, 230, 230), "fail"), ((230, 253.1, 230), "fail"),
                                            ((207, 253, 230), "pass")])
def test_voltage_band(voltage, status):
    assert by_name(meter_checks("grid", **GOOD | {"voltage": voltage}))["voltage"].status == status


@pytest.mark.parametrize("hz,status", [(49.4, "fail"), (50.6, "fail"), (49.5, "pass"), (50.5, "pass")])
def test_frequency_band(hz, status):
    assert by_name(meter_checks("grid", **GOOD | {"frequency": hz}))["frequency"].status == status


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_frequency_passes_exactly_inside_the_band(hz):
    check = by_name(meter_checks("grid", **GOOD | {"frequency": hz}))["frequency"]
    assert check.status == ("pass" if 49.5 <= hz <= 50.5 else "fail")
    assert check.status == "pass" or "outside 49.5-50.5 Hz" in check.detail


def test_frequency_is_skipped_only_when_the_map_lacks_it():
    assert by_name(meter_checks("grid", **GOOD | {"frequency": None, "reads_frequency": False}))[
        "frequency"].status == "skip"
    missing = by_name(meter_checks("grid", **GOOD | {"frequency": None}))["frequency"]
    assert missing.status == "fail" and "no plausible frequency" in missing.detail


def test_one_phase_exporting_while_the_others_import_is_an_inverted_ct_warning():
    check = by_name(meter_checks("grid", **GOOD | {"power": (2300, -1150, 460)}))["direction"]
    assert check.status == "warn" and "L2" in check.detail


def test_power_beyond_voltage_times_current_fails():
    assert by_name(meter_checks("grid", **GOOD | {"power": (23000, 1150, 460)}))["direction"].status == "fail"


def test_an_unreachable_meter_fails_with_the_reason():
    checks = meter_checks("grid", reachable=False, problem="timeout", voltage=None, current=None, power=None,
                          frequency=None, reads_frequency=True)
    assert failed(checks) and "timeout" in checks[0].detail


FULL = {"SupportedFeatureProfiles": "Core,SmartCharging,LocalAuthListManagement",
        "ChargeProfileMaxStackLevel": "8", "LocalAuthListMaxLength": "100"}


def charger(**kw):
    args = dict(connected=True, registration="Accepted", clock_offset_s=2.0, configuration=FULL,
                smart_charging_needed=True, stack_level_needed=2, local_list_needed=10) | kw
    return by_name(charger_checks("CP-1", **args))


def test_a_good_charger_passes():
    assert {c.status for c in charger(**{}).values()} == {"pass"}


def test_not_connected_is_one_failure():
    checks = charger_checks("CP-1", connected=False, registration=None, clock_offset_s=None, configuration=None,
                            smart_charging_needed=True, stack_level_needed=1, local_list_needed=None)
    assert [c.status for c in checks] == ["fail"]


def test_charger_problems_are_named():
    assert charger(registration="Pending")["booted"].status == "fail"
    assert charger(clock_offset_s=-3600)["clock"].status == "fail"
    no_smart = FULL | {"SupportedFeatureProfiles": "Core"}
    assert charger(configuration=no_smart)["smart charging"].status == "fail"
    assert charger(configuration=no_smart, smart_charging_needed=False)["smart charging"].status == "warn"
    assert charger(stack_level_needed=9)["stack levels"].status == "fail"
    assert charger(local_list_needed=500)["local list"].status == "warn"


def test_clock_offset():
    assert clock_offset("2026-01-01T00:01:00Z", "2026-01-01T00:00:00.000Z") == 60
    assert clock_offset(None, "2026-01-01T00:00:00Z") is None
    assert clock_offset("garbage", "2026-01-01T00:00:00Z") is None


def test_config_check_warns_about_a_charger_above_its_circuit():
    from edge.config import config_warnings, parse_config

    text = """
[site]
id = "s"
[[circuits]]
id = "grid"
limit = 63
[[chargers]]
id = "BIG"
max_current = 80
[[chargers]]
id = "OK"
max_current = 32
"""
    warnings = [w for w in config_warnings(parse_config(text)) if "limit" in w]
    assert len(warnings) == 1 and "'BIG'" in warnings[0] and "80 A" in warnings[0] and "63 A" in warnings[0]


@pytest.mark.parametrize(("offset", "shown"), [(-0.3, "+0 s"), (0.4, "+0 s"), (-3600.2, "-3600 s"), (59.6, "+60 s")])
def test_the_clock_offset_reads_as_whole_seconds_without_a_negative_zero(offset, shown):
    assert charger(clock_offset_s=offset)["clock"].detail == f"{shown} from the edge's clock"
