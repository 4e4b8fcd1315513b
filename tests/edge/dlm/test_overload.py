"""The over-the-limit alert (issue 15, observation 6): tables of the cases, and
properties over random reading sequences against a direct reading of the rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from edge.dlm.model import Allocation, Circuit, CircuitLoad, PhaseLoad, Topology
from edge.dlm.overload import OverloadWatch, Watch, reaction_window, step, what_was_done

W = 6.5          # the default window: 1 s meter period + 0.5 s edge + 5 s follow time


def run(readings, limit=63.0, window=W, clear_after=W):
    """Feed (at, metered) readings; -> (final watch, [(at, change)])."""
    watch, changes = Watch(), []
    for at, metered in readings:
        watch, change = step(watch, metered, limit, at, window, clear_after)
        if change:
            changes.append((at, change))
            if change == "cleared":
                watch = Watch(last_at=watch.last_at)
    return watch, changes


def every_second(values, start=0.0):
    return [(start + i, v) for i, v in enumerate(values)]


def test_the_window_is_a_meter_period_the_edge_and_the_cars_follow_time():
    assert reaction_window(5.0, 1.0) == 6.5
    assert reaction_window(0.5, 0.2) == pytest.approx(1.2)


@pytest.mark.parametrize("readings,expected", [
    # Over for less than the window, then answered: nothing to report.
    (every_second([60, 66, 66, 66, 66, 66, 66, 62, 62]), []),
    # Still over at 7 s after the first reading over it: raised there.
    (every_second([60, 66.1, 66.1, 66.1, 66.1, 66.1, 66.1, 66.1, 66.1]), [(8.0, "raised")]),
    # Exactly at the limit is not over it.
    (every_second([63.0] * 20), []),
    # A dip under the limit starts a new stretch: two overloads each answered in time.
    (every_second([66] * 6 + [62] + [66] * 6 + [62]), []),
    # Raised, then under for a window: cleared at the first reading a window after it went under.
    (every_second([66] * 8 + [60] * 8), [(7.0, "raised"), (15.0, "cleared")]),
    # A dip shorter than the window keeps the alert open: one alert, not one per dip.
    (every_second([66] * 8 + [60] * 3 + [66] * 3 + [60] * 8), [(7.0, "raised"), (21.0, "cleared")]),
])
def test_cases(readings, expected):
    assert run(readings)[1] == expected


def test_a_reading_seen_again_or_missing_changes_nothing():
    watch, _ = run(every_second([66, 66]))
    for at, metered in [(1.0, 70.0), (0.5, 70.0), (5.0, None), (5.0, math.nan), (math.nan, 70.0)]:
        assert step(watch, metered, 63.0, at, W, W) == (watch, None)


def test_the_meter_lost_during_an_overload_neither_ends_nor_raises_it():
    # The failsafe has its own alert; once readings come back still over, the stretch goes on.
    _, changes = run([(0.0, 66.0), (1.0, 66.0), (2.0, None), (3.0, None), (8.0, 66.0)])
    assert changes == [(8.0, "raised")]


def test_peak_and_amp_seconds_over():
    watch, _ = run(every_second([64, 66, 65]) + [(4.0, 63.0)])
    assert watch == Watch(last_at=4.0)           # answered in time: the stretch is forgotten
    watch, _ = run(every_second([64, 66, 65, 64, 64, 64, 64, 64]))
    assert watch.peak == 66 and watch.since == 0 and watch.raised_at == 7.0
    assert watch.excess_as == pytest.approx(1 + 3 + 2 + 1 + 1 + 1 + 1)


@pytest.mark.parametrize("allocated,reserved,text", [
    (0.0, 0.0, "every car on it at 0 A; nothing left to shed"),
    (12.0, 0.0, "cars reduced to 12 A on this phase"),
    (0.0, 32.0, "every car the edge steers on it at 0 A; 32 A held for chargers the edge cannot steer"),
    (6.0, 16.0, "cars reduced to 6 A on this phase; 16 A held for chargers"),
])
def test_what_was_done(allocated, reserved, text):
    assert what_was_done(allocated, reserved).startswith(text)


@dataclass
class Reading:
    current: tuple[float, float, float]
    at: float


def loads(allocated=(0.0, 0.0, 0.0)) -> Allocation:
    phases = tuple(PhaseLoad(63.0, 0.0, 0.0, a, None) for a in allocated)
    return Allocation(circuits={"grid": CircuitLoad("grid", False, phases)})  # type: ignore[arg-type]


def test_the_demo_grid_l2_over_its_fuse_with_every_car_at_0_a():
    topology = Topology((Circuit("grid", 63.0, meter="grid-meter"),), ())
    watch = OverloadWatch({"grid": W})
    start = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    at = lambda t: start + timedelta(seconds=t)  # noqa: E731  (the wall clock)
    changes = []
    for t in range(9):
        changes += watch.observe(topology, {"grid": Reading((20.0, 66.1, 18.0), float(t))}, loads(), t, at(t))
    [raised] = changes
    assert raised.active and (raised.circuit, raised.phase, raised.limit) == ("grid", 1, 63.0)
    data = raised.data()
    assert data["phase"] == "L2" and data["peak"] == 66.1 and data["lasted_s"] == 7.0
    assert data["since"] == "2026-12-01T12:00:00.000Z" and data["done"] == what_was_done(0, 0)
    assert "every car on it at 0 A; nothing left to shed" in raised.message()
    status = watch.status(("grid", 1))
    assert status is not None and status["alert"] and status["peak"] == 66.1
    assert watch.status(("grid", 0)) is None
    # The building switches its load off: cleared a window later, and the phase shows nothing any more.
    for t in range(9, 17):
        changes += watch.observe(topology, {"grid": Reading((20.0, 40.0, 18.0), float(t))}, loads(), t, at(t))
    assert [c.active for c in changes] == [True, False]
    assert changes[1].data()["ended"] == "2026-12-01T12:00:09.000Z"   # the first reading under it
    assert "over the limit ended circuit=grid L2" in changes[1].message()
    assert watch.status(("grid", 1)) is None


@dataclass
class MeterReading:
    current: tuple[float, float, float]
    at: float
    wall: datetime


def test_since_is_the_first_reading_over_the_limit_as_the_meter_stamped_it_whenever_it_is_looked_at():
    topology = Topology((Circuit("grid", 63.0, meter="grid-meter"),), ())
    watch = OverloadWatch({"grid": W})
    stamped = datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    first = MeterReading((70.0, 0.0, 0.0), 100.0, stamped)
    # Looked at again by later evaluations, with the clock moved on: the same instant each time.
    for later in (0.0, 0.4, 0.9):
        watch.observe(topology, {"grid": first}, loads(), 100.0 + later, stamped + timedelta(seconds=later + 0.001))
        assert watch.status(("grid", 0))["since"] == "2026-12-01T12:00:00.123Z"


# --- properties -------------------------------------------------------------------------------------------

readings = st.lists(st.tuples(st.floats(0.05, 3.0), st.one_of(st.none(), st.floats(50.0, 75.0))),
                    min_size=1, max_size=80)


def timeline(steps):
    out, at = [], 0.0
    for dt, metered in steps:
        at += dt
        out.append((at, metered))
    return out


@settings(max_examples=400, deadline=None)
@given(readings, st.floats(0.5, 10.0))
def test_raised_only_after_readings_over_the_limit_for_longer_than_the_window(steps, window):
    seq = timeline(steps)
    _, changes = run(seq, window=window, clear_after=window)
    kinds = [c for _, c in changes]
    assert kinds == ["raised", "cleared"] * (len(kinds) // 2) + ["raised"] * (len(kinds) % 2), "they alternate"
    for at, change in changes:
        if change != "raised":
            continue
        # Reading back from the raise: every reading over the limit, back to one more than the window earlier.
        known = [(t, m) for t, m in seq if t <= at and m is not None]
        stretch = []
        for t, m in reversed(known):
            if m <= 63.0:
                break
            stretch.append(t)
        assert stretch and stretch[0] == at and at - stretch[-1] > window


@settings(max_examples=400, deadline=None)
@given(readings, st.floats(0.5, 10.0))
def test_a_phase_over_its_limit_for_longer_than_the_window_is_alerted(steps, window):
    seq = timeline(steps)
    _, changes = run(seq, window=window, clear_after=window)
    raised = lambda t: any(c == "raised" and a <= t for a, c in changes)  # noqa: E731
    start = None
    for at, metered in seq:
        if metered is None:
            continue
        if metered > 63.0:
            start = at if start is None else start
            if at - start > window:
                assert raised(at), f"over since {start}, still at {at}: no alert"
        else:
            start = None


@settings(max_examples=400, deadline=None)
@given(readings, st.floats(0.5, 10.0))
def test_cleared_only_after_a_window_at_or_under_the_limit(steps, window):
    seq = timeline(steps)
    _, changes = run(seq, window=window, clear_after=window)
    for at, change in changes:
        if change != "cleared":
            continue
        known = [(t, m) for t, m in seq if t <= at and m is not None]
        under = []
        for t, m in reversed(known):
            if m > 63.0:
                break
            under.append(t)
        assert under and under[0] == at and at - under[-1] >= window
