"""The boundary's rules as pure functions: times, integers, samples, depth."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.exceptions import OCPPError

from edge.clock import parse_iso
from edge.ocpp import boundary
from edge.ocpp.boundary import check_call, nesting_depth_exceeds, unique_id_of

ARRIVED = "2026-11-23T10:00:00.000Z"


def refused(action: str, payload: dict) -> OCPPError:
    with pytest.raises(OCPPError) as caught:
        check_call(action, payload, ARRIVED)
    return caught.value


@pytest.mark.parametrize("stamp, stored", [
    ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z"),                  # kept as sent
    ("2026-11-23T10:00:00.123456789+01:00", "2026-11-23T10:00:00.123456789+01:00"),
    ("2026-11-23t10:00:00z", "2026-11-23t10:00:00z"),
    ("2026-11-23T10:00:00", "2026-11-23T10:00:00"),                    # no offset: UTC, as chargers mean it
    ("2014-12-31T23:30:00-01:00", "2014-12-31T23:30:00-01:00"),        # 2015-01-01T00:30Z
    ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999Z"),              # a leap second, readable back
    ("0001-01-01T00:00:00Z", ARRIVED),                                 # unset clocks: arrival time
    ("0000-01-01T00:00:00Z", ARRIVED),
    ("1970-01-01T00:00:00Z", ARRIVED),
    ("2000-01-01T00:00:00Z", ARRIVED),
    ("2014-12-31T23:59:59Z", ARRIVED),
    ("2100-01-01T00:00:00Z", ARRIVED),
    ("9999-12-31T23:59:59-23:59", ARRIVED),
])
def test_well_formed_times_are_kept_or_repaired(stamp, stored):
    checked = check_call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": stamp},
                         ARRIVED)
    assert checked.payload["timestamp"] == stored
    assert checked.repaired("timestamp") == (stored == ARRIVED)
    assert parse_iso(stored) is not None


@pytest.mark.parametrize("stamp", ["", "now", "2026-11-23", "2026-02-30T10:00:00Z", "2026-11-23T24:00:00Z",
                                   "2026-11-23T10:61:00Z", "2026-11-23T10:00:61Z", "2026-11-23T10:00:00+24:00",
                                   "2026-11-23 10:00:00Z", "\uff12\uff10\uff12\uff16-11-23T10:00:00Z",
                                   "2026-11-23T10:00:00.1234567890Z", "2026-11-23T10:00:00" + "9" * 140_000 + "Z"])
def test_malformed_times_are_type_violations_naming_field_and_short_value(stamp):
    error = refused("StopTransaction", {"transactionId": 1, "meterStop": 0, "timestamp": stamp})
    assert error.code == "TypeConstraintViolation"
    assert error.details["field"] == "timestamp" and len(error.details["value"]) < 80


@pytest.mark.parametrize("action, payload, code, field", [
    ("StartTransaction", {"meterStart": 2 ** 70}, "TypeConstraintViolation", "meterStart"),
    ("StartTransaction", {"meterStart": 2 ** 53}, "PropertyConstraintViolation", "meterStart"),
    ("StartTransaction", {"meterStart": -1}, "PropertyConstraintViolation", "meterStart"),
    ("StartTransaction", {"connectorId": 0}, "PropertyConstraintViolation", "connectorId"),
    ("StartTransaction", {"reservationId": -(2 ** 31) - 1}, "PropertyConstraintViolation", "reservationId"),
    ("StatusNotification", {"connectorId": 2 ** 64}, "TypeConstraintViolation", "connectorId"),
    ("StatusNotification", {"connectorId": 101}, "PropertyConstraintViolation", "connectorId"),
    ("MeterValues", {"connectorId": -1}, "PropertyConstraintViolation", "connectorId"),
    ("MeterValues", {"connectorId": 1, "transactionId": 2 ** 63}, "TypeConstraintViolation", "transactionId"),
    ("StopTransaction", {"meterStop": 2 ** 63}, "TypeConstraintViolation", "meterStop"),
    ("Authorize", {"idTag": "\ud800"}, "FormationViolation", "idTag"),
    ("DataTransfer", {"vendorId": "v", "data": "ok \udfff"}, "FormationViolation", "data"),
])
def test_integers_and_strings_out_of_bounds_are_refused(action, payload, code, field):
    error = refused(action, payload)
    assert (error.code, error.details["field"]) == (code, field)
    assert error.details["value"] in error.description


@pytest.mark.parametrize("action, payload", [
    ("StartTransaction", {"connectorId": 100, "meterStart": 2 ** 31 - 1, "reservationId": -(2 ** 31)}),
    ("StopTransaction", {"transactionId": -1, "meterStop": 0}),         # -1: a charger that lost its id
    ("StopTransaction", {"transactionId": 7, "meterStop": 3_400_000_000}),  # a DC charger's register after years
    ("StatusNotification", {"connectorId": 0}),
    ("StartTransaction", {"connectorId": True, "meterStart": 1.5}),      # wrong JSON types: the schema's to refuse
])
def test_values_within_bounds_pass_unchanged(action, payload):
    assert check_call(action, payload, ARRIVED).payload == payload


def test_bad_samples_are_left_out_with_a_repair_each():
    samples = [{"value": "12.5"}, {"value": "-0.5e3"}, {"value": "1e400"}, {"value": "NaN"}, {"value": "1,5"},
               {"value": "9" * 100}, {"value": "1e13"}, {"value": "AAAA", "format": "SignedData"}]
    checked = check_call("MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "garbage", "sampledValue": samples}]}, ARRIVED)
    [entry] = checked.payload["meterValue"]
    assert entry["timestamp"] == ARRIVED
    assert [s["value"] for s in entry["sampledValue"]] == ["12.5", "-0.5e3", "AAAA"]
    assert len(checked.repairs) == 6


@given(st.datetimes(min_value=datetime(2015, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(timezone.utc)))
def test_every_plausible_time_round_trips(moment):
    text = moment.isoformat().replace("+00:00", "Z")
    assert boundary.parse_date_time(text) == moment
    assert check_call("StatusNotification", {"timestamp": text}, ARRIVED).payload["timestamp"] == text


@given(st.text(max_size=60))
def test_any_text_is_a_plausible_time_an_arrival_time_or_refused(text):
    try:
        stored = check_call("StatusNotification", {"timestamp": text}, ARRIVED).payload["timestamp"]
    except OCPPError as error:
        assert error.code == "TypeConstraintViolation"
        return
    moment = parse_iso(stored)
    assert moment is not None and boundary.EARLIEST <= moment < boundary.LATEST


JSON = st.recursive(st.none() | st.integers() | st.text(alphabet='[]{}"\\ab,:', max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=30)


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300)
@given(JSON, st.integers(1, 8))
def test_depth_check_agrees_with_the_parsed_structure(value, limit):
    assert nesting_depth_exceeds(json.dumps(value), limit) == (depth(value) > limit)


@given(st.text(max_size=200))
def test_depth_check_never_fails_and_only_flags_deep_text(text):
    if nesting_depth_exceeds(text, 4):
        assert text.count("[") + text.count("{") > 4


def test_depth_check_is_fast_on_the_largest_frames():
    frames = ['[2,"x","DataTransfer",{"vendorId":"x","data":"' + 'A\\"[{' * 50_000 + '"}]',
              "[" + "[]," * 80_000 + "[]]", "[}" * 120_000, "[" * 250_000]
    for frame in frames:
        started = time.perf_counter()
        nesting_depth_exceeds(frame)
        assert time.perf_counter() - started < 0.1, frame[:40]


@pytest.mark.parametrize("frame, unique_id", [
    ('[2, "abc", "Heartbeat", {', "abc"), ('[2,"a\\"b","X",' + "[" * 5000, 'a"b'), ("[" * 5000, "-1"),
    ('{"a": 1}', "-1"), (b"\xff\xfe", "-1"), ('[2, 17, "Heartbeat", {}]', "-1"),
])
def test_unique_id_of_a_frame_that_will_not_parse(frame, unique_id):
    assert unique_id_of(frame) == unique_id
