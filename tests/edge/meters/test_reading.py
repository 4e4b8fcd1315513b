"""The plausibility check: table tests for what a real meter returns, and
properties that hold whatever it returns."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.meters.config import MeterConfig
from edge.meters.reading import MeterReading, Sample, check, stale_after

CONFIG = MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "tcp", "host": "10.0.0.5",
                                     "current_max": 100})
WALL = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
GOOD = {"current_l1": 10.0, "current_l2": 5.0, "current_l3": 0.0,
        "voltage_l1": 231.0, "voltage_l2": 229.0, "voltage_l3": 230.0,
        "power_l1": 2310.0, "power_l2": -1145.0, "power_l3": 0.0,
        "import_energy": 5000.0, "export_energy": 100.0, "frequency": 50.02}


def sample(at: float = 100.0, phases: int = 3, **changes) -> Sample:
    return Sample(values={**GOOD, **changes}, at=at, wall=WALL, phases=phases)


def previous(at: float = 99.0, import_wh: float | None = 5000.0, export_wh: float | None = 100.0) -> MeterReading:
    return MeterReading("grid", at, WALL, (1.0, 1.0, 1.0), (230.0,) * 3, (0.0,) * 3, import_wh, export_wh)


def test_a_good_reading():
    reading, problems = check(sample(), None, 100.0, CONFIG)
    assert problems == []
    assert reading == MeterReading("grid", 100.0, WALL, (10.0, 5.0, 0.0), (231.0, 229.0, 230.0),
                                   (2310.0, -1145.0, 0.0), 5000.0, 100.0, 50.02)


@pytest.mark.parametrize("changes, problem", [
    ({"current_l1": math.nan}, "current_l1 is not a number"),
    ({"voltage_l2": math.inf}, "voltage_l2 is not a number"),
    ({"power_l3": -math.inf}, "power_l3 is not a number"),
    ({"current_l2": None}, "current_l2 not available"),
    ({"current_l3": -0.5}, "current_l3 is negative"),
    ({"current_l1": 100.5}, "above current_max 100 A"),
    ({"voltage_l1": 301.0}, "outside 0..300 V"),
    ({"voltage_l1": -1.0}, "outside 0..300 V"),
    ({"power_l1": 40_000.0}, "beyond what 100 A can carry"),
    ({"current_l1": "12"}, "not a number"),
])
def test_refused(changes, problem):
    reading, problems = check(sample(**changes), None, 100.0, CONFIG)
    assert reading is None
    assert any(problem in p for p in problems), problems


def test_a_missing_phase_reads_zero_volts_and_amps_and_is_fine():
    reading, problems = check(sample(current_l3=0.0, voltage_l3=0.0, power_l3=0.0), None, 100.0, CONFIG)
    assert reading is not None and problems == []
    assert reading.voltage[2] == 0.0


def test_current_without_voltage_is_used_and_flagged():
    reading, problems = check(sample(current_l2=8.0, voltage_l2=0.0, power_l2=0.0), None, 100.0, CONFIG)
    assert reading is not None and reading.current[1] == 8.0
    assert any("L2 carries 8 A but shows 0 V" in p for p in problems)


def test_negative_zero_current_is_zero():
    reading, _ = check(sample(current_l3=-0.0), None, 100.0, CONFIG)
    assert reading is not None and math.copysign(1, reading.current[2]) == 1


def test_single_phase_meter_has_zero_on_l2_l3():
    values = {k: v for k, v in GOOD.items() if not k.endswith(("l2", "l3"))}
    reading, problems = check(Sample(values, 100.0, WALL, phases=1), None, 100.0, CONFIG)
    assert reading is not None and problems == []
    assert reading.current == (10.0, 0.0, 0.0) and reading.power == (2310.0, 0.0, 0.0)


def test_energy_going_backwards_is_flagged_and_dropped_but_currents_stay():
    reading, problems = check(sample(import_energy=4000.0), previous(), 100.0, CONFIG)
    assert reading is not None and reading.current == (10.0, 5.0, 0.0)
    assert reading.import_wh is None and reading.export_wh == 100.0
    assert any("import_energy total went backwards from 5000 Wh to 4000 Wh" in p for p in problems)


def test_energy_after_a_dropped_value_is_taken_again():
    # The meter was replaced: one reading flagged, then the new counter is used.
    reading, _ = check(sample(import_energy=10.0), previous(import_wh=None), 100.0, CONFIG)
    assert reading is not None and reading.import_wh == 10.0


def test_float32_jitter_of_an_energy_total_is_not_backwards():
    reading, problems = check(sample(import_energy=12_345_678.0), previous(import_wh=12_345_679.0), 100.0, CONFIG)
    assert reading is not None and reading.import_wh == 12_345_678.0 and problems == []


@pytest.mark.parametrize("value", [math.nan, -5.0, math.inf])
def test_absurd_energy_is_dropped(value):
    reading, problems = check(sample(export_energy=value), None, 100.0, CONFIG)
    assert reading is not None and reading.export_wh is None
    assert any("export_energy total" in p for p in problems)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=3)))
def test_a_frequency_is_kept_inside_40_to_70_hz_else_dropped_and_the_currents_stay(value):
    reading, problems = check(sample(frequency=value), None, 100.0, CONFIG)
    assert reading is not None and reading.current == (10.0, 5.0, 0.0)
    plausible = isinstance(value, float) and 40.0 <= value <= 70.0
    assert reading.frequency == (value if plausible else None)
    assert (value is None or plausible) == (problems == [])
    assert plausible or value is None or "frequency" in problems[0]


def test_missing_energy_is_fine():
    values = {k: v for k, v in GOOD.items() if "energy" not in k}
    reading, problems = check(Sample(values, 100.0, WALL), None, 100.0, CONFIG)
    assert reading is not None and reading.import_wh is None and problems == []


def test_stale_reading_is_refused():
    now = 100.0 + stale_after(CONFIG) + 0.01
    reading, problems = check(sample(at=100.0), None, now, CONFIG)
    assert reading is None and "stale" in problems[0]


def test_reading_not_newer_than_the_last_is_refused():
    reading, problems = check(sample(at=100.0), previous(at=100.0), 100.0, CONFIG)
    assert reading is None and "not newer" in problems[0]


def test_reading_from_the_future_is_refused():
    reading, problems = check(sample(at=105.0), None, 100.0, CONFIG)
    assert reading is None and "future" in problems[0]


# -- properties ----------------------------------------------------------------------------

anything = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                     st.sampled_from([0.0, -0.0, 230.0, 1e308, -1e-320]), st.text(max_size=3))
samples = st.builds(
    Sample,
    values=st.dictionaries(st.sampled_from(sorted(GOOD)), anything, max_size=len(GOOD)).map(
        lambda d: {**{k: v for k, v in GOOD.items() if k not in d}, **d}),
    at=st.floats(allow_nan=True, allow_infinity=True),
    wall=st.just(WALL),
    phases=st.sampled_from([1, 3]),
)
previous_readings = st.one_of(st.none(), st.builds(
    previous, at=st.floats(-1e9, 1e9), import_wh=st.one_of(st.none(), st.floats(0, 1e12)),
    export_wh=st.one_of(st.none(), st.floats(0, 1e12))))
limits = st.floats(0.1, 100_000).map(lambda a: CONFIG.model_copy(update={"current_max": a}))


@settings(max_examples=300, deadline=None)
@given(samples, previous_readings, st.floats(allow_nan=True, allow_infinity=True), limits)
def test_check_never_raises_and_never_passes_a_bad_current(s, prev, now, config):
    reading, problems = check(s, prev, now, config)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    if reading is None:
        assert problems, "a refusal always says why"
        return
    for amps in reading.current:
        assert isinstance(amps, float) and math.isfinite(amps) and 0 <= amps <= config.current_max
    for volts in reading.voltage:
        assert math.isfinite(volts) and 0 <= volts <= 300
    assert all(math.isfinite(w) for w in reading.power)
    for total in (reading.import_wh, reading.export_wh):
        assert total is None or (math.isfinite(total) and total >= 0)
    assert prev is None or reading.at > prev.at


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e9), min_size=2, max_size=8))
def test_energy_never_goes_backwards_across_accepted_readings(totals):
    last: MeterReading | None = None
    for i, total in enumerate(totals):
        reading, _ = check(sample(at=100.0 + i, import_energy=total), last, 100.0 + i, CONFIG)
        assert reading is not None
        if reading.import_wh is not None and last is not None and last.import_wh is not None:
            assert reading.import_wh >= last.import_wh - max(1.0, last.import_wh * 1e-6)
        last = reading
