"""The 1.6 adapter's reading of MeterValue lists into the site's samples: whatever a
station sends, the core gets finite numbers in Wh/W (or a reported problem), never a guess."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st

from edge.ocpp.v16.meter_values import parse_meter_values

RECEIVED = "2026-12-06T10:00:00.000Z"

values = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=8),
                   st.none(), st.integers(-10**6, 10**6))
sampled = st.fixed_dictionaries(
    {"value": values},
    optional={"unit": st.sampled_from(["Wh", "kWh", "W", "kW", "A", "V"]),
              "measurand": st.sampled_from(["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import"]),
              "phase": st.sampled_from(["L1", "L2", "L3", "L1-N"]), "format": st.sampled_from(["Raw", "SignedData"])})
entries = st.lists(st.fixed_dictionaries({"timestamp": st.sampled_from(["2026-12-06T09:59:00Z", "not a time"]),
                                          "sampled_value": st.lists(sampled, max_size=4)}), max_size=3)


@given(entries)
def test_every_sample_is_a_finite_number_in_the_sites_units_or_a_problem(meter_value):
    samples, problems = parse_meter_values(2, 7, meter_value, RECEIVED)
    given_count = sum(len(e["sampled_value"]) for e in meter_value)
    unread = sum(1 for p in problems if "sampledValue" in p)
    assert len(samples) + unread == given_count
    for sample in samples:
        assert math.isfinite(sample.value)
        assert sample.unit not in ("kWh", "kW")
        assert (sample.connector_id, sample.transaction_id) == (2, 7)


def test_kilo_units_and_the_specs_defaults():
    samples, problems = parse_meter_values(1, None, [{"timestamp": "2026-12-06T09:59:00Z", "sampled_value": [
        {"value": "1.5", "unit": "kWh"}, {"value": "230.1", "measurand": "Voltage", "phase": "L1-N"}]}], RECEIVED)
    assert problems == []
    assert [(s.measurand, s.value, s.unit, s.context, s.location, s.phase) for s in samples] == [
        ("Energy.Active.Import.Register", 1500.0, "Wh", "Sample.Periodic", "Outlet", None),
        ("Voltage", 230.1, "V", "Sample.Periodic", "Outlet", "L1-N")]
