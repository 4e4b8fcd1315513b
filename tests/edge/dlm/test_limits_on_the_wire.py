"""Load management speaks StationControl (ChargingLimit) now, not 1.6 messages. For a 1.6
charger nothing changes on the wire: the 1.6 adapter words the load manager's limits
byte for byte as the 1.6 builders of edge/dlm/actuation.py did (profile ids 100 +
connector and 1, startSchedule, duration, stackLevel, watts at NOMINAL_VOLTAGE, key order).
For a 2.0.1 station the same limits are schema-valid 2.0.1 profiles the simulated station
takes (TxDefaultProfile on EVSE 0, Relative; TxProfile with its transactionId, Absolute)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import given, strategies as st
from ocpp.messages import Call, _validate_payload

from edge.dlm.actuation import Order, default_limit, tx_default_profile, tx_limit, tx_profile
from edge.dlm.manager import rate_unit
from edge.ocpp.v16.control import charging_profile as profile_16
from edge.ocpp.v201.control import charging_profile as profile_201
from simulator.v201 import charging as charging_201

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)

orders = st.builds(
    Order, key=st.tuples(st.sampled_from(["A", "CP-1"]), st.integers(1, 4)),
    limit=st.floats(0, 80, allow_nan=False, allow_infinity=False), phases=st.sampled_from([1, 2, 3]),
    transaction_id=st.integers(1, 2**31 - 1), kind=st.sampled_from(["decrease", "increase", "renew"]),
    reason=st.just("r"))
starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(timezone.utc))
units = st.sampled_from(["A", "W"])


def wire(params: dict) -> str:
    return json.dumps(params)


@given(orders, starts, st.integers(30, 86_400), st.integers(0, 9), units)
def test_a_tx_profile_for_a_16_charger_is_byte_identical_to_the_old_builder(order, start, duration, level, unit):
    old = tx_profile(order, start=start, duration=duration, stack_level=level, unit=unit)
    new = profile_16(tx_limit(order, start=start, duration=duration, stack_level=level, unit=unit))
    assert wire(new) == wire(old)


@given(st.floats(0, 80, allow_nan=False, allow_infinity=False), st.sampled_from([1, 2, 3]), st.integers(0, 9), units)
def test_a_default_profile_for_a_16_charger_is_byte_identical_to_the_old_builder(limit, phases, level, unit):
    old = tx_default_profile(limit, phases, stack_level=level, unit=unit)
    new = profile_16(default_limit(limit, phases, stack_level=level, unit=unit))
    assert wire(new) == wire(old)


def assert_valid_201(params: dict) -> None:
    _validate_payload(Call("1", "SetChargingProfile", json.loads(json.dumps(params))), "2.0.1")


def snake(params: dict) -> dict:
    from ocpp.charge_point import camel_to_snake_case
    return camel_to_snake_case(params)


@given(st.floats(0, 80, allow_nan=False, allow_infinity=False), st.sampled_from([1, 2, 3]), st.integers(0, 8), units)
def test_a_default_limit_is_a_valid_201_tx_default_profile_on_evse_0(limit, phases, level, unit):
    params = profile_201(default_limit(limit, phases, stack_level=level, unit=unit), None, NOW)
    assert_valid_201(params)
    assert params["evseId"] == 0
    profile = params["chargingProfile"]
    assert (profile["chargingProfilePurpose"], profile["chargingProfileKind"]) == ("TxDefaultProfile", "Relative")
    assert "transactionId" not in profile
    # What the simulated 2.0.1 station checks of a new profile (K01.FR.*): accepted.
    parsed = charging_201.parse(snake(params)["charging_profile"], received=NOW)
    charging_201.check([], 0, parsed, evses=2, transaction_id=None, max_stack_level=8, max_periods=24)


@given(orders, st.integers(30, 86_400), st.integers(0, 8), units)
def test_a_tx_limit_is_a_valid_201_tx_profile_for_the_stations_transaction(order, duration, level, unit):
    params = profile_201(tx_limit(order, start=NOW, duration=duration, stack_level=level, unit=unit), "tx-abc", NOW)
    assert_valid_201(params)
    profile = params["chargingProfile"]
    assert params["evseId"] == order.key[1]
    assert (profile["chargingProfilePurpose"], profile["chargingProfileKind"], profile["transactionId"]) == \
        ("TxProfile", "Absolute", "tx-abc")
    assert profile["chargingSchedule"][0]["duration"] == duration
    parsed = charging_201.parse(snake(params)["charging_profile"], received=NOW)
    charging_201.check([], order.key[1], parsed, evses=4, transaction_id="tx-abc", max_stack_level=8, max_periods=24)


@given(st.one_of(st.none(), st.text(max_size=40),
                 st.lists(st.sampled_from(["Current", "Power", "A", "W", " A", "W ", "", "x"])).map(",".join)))
def test_any_rate_unit_a_station_reports_gives_amps_or_watts(units):
    """1.6 ChargingScheduleAllowedChargingRateUnit or 2.0.1 SmartChargingCtrlr.RateUnit, as a station sent it:
    amps when it lists them (or says nothing), else watts; never an error."""
    members = {u.strip() for u in (units or "A").split(",")}
    assert rate_unit(units) == ("A" if members & {"Current", "A"} else "W")
    assert rate_unit("Current") == rate_unit("A") == rate_unit("W,A") == rate_unit(None) == "A"
    assert rate_unit("Power") == rate_unit("W") == "W"
