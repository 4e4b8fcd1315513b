"""The energy a controller's overload bought its cars, counted in what the cars would have had to shed."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.dlm_scenario_shed import shed_amps

THREE = (16.0, 16.0, 16.0)


def test_a_three_phase_car_sheds_on_every_phase_it_draws_on():
    # L1 1 A over: the 3-phase car gives up 1 A, which is 1 A on each of its three phases.
    assert shed_amps((1.0, -2.0, -2.0), [THREE]) == 3.0


def test_the_cheapest_car_sheds_first():
    # A 1-phase car on L1 can take the whole 2 A over L1 at a third of the 3-phase car's cost.
    assert shed_amps((2.0, -1.0, -1.0), [THREE, (16.0, 0.0, 0.0)]) == 2.0


def test_one_car_sheds_for_two_phases_over():
    # L1 and L2 both 2 A over: the 3-phase car shedding 2 A covers both (6 A·phases), cheaper than anything else.
    assert abs(shed_amps((2.0, 2.0, -5.0), [THREE]) - 6.0) < 1e-6


def test_within_the_fuse_nothing_is_shed():
    assert shed_amps((0.0, -3.0, -0.5), [THREE, (10.0, 0.0, 0.0)]) == 0.0


def test_a_building_over_the_fuse_on_its_own_takes_all_the_cars_draw_there():
    # 40 A over on L2 with one 3-phase car at 16 A: the car sheds all 16 A, on its three phases.
    assert shed_amps((-5.0, 40.0, -5.0), [THREE]) == 48.0
    assert shed_amps((-5.0, 40.0, -5.0), [(0.0, 0.0, 16.0)]) == 0.0     # no car on L2: nothing to shed


def brute_force(excess, cars, step=0.5):
    """The least shed over a grid of currents per car (an upper bound on the true least: the grid is a part of
    what may be shed); None when no point of the grid brings the phases within what the cars can give."""
    drawing = [[p for p in range(3) if car[p] > 0] for car in cars]
    most = [min((car[p] for p in phases), default=0.0) for car, phases in zip(cars, drawing)]
    need = [min(e, sum(m for m, phases in zip(most, drawing) if p in phases)) for p, e in enumerate(excess)]
    best = None
    for shed in itertools.product(*[[i * step for i in range(int(m / step) + 1)] for m in most]):
        if all(sum(r for r, phases in zip(shed, drawing) if p in phases) >= need[p] - 1e-9
               for p in range(3) if excess[p] > 0):
            cost = sum(r * len(phases) for r, phases in zip(shed, drawing))
            best = cost if best is None else min(best, cost)
    return best, sum(n for n, e in zip(need, excess) if e > 0)


amps = st.integers(min_value=0, max_value=6).map(float)


@settings(max_examples=150, deadline=None)
@given(excess=st.tuples(*[st.integers(min_value=-3, max_value=8).map(float)] * 3),
       cars=st.lists(st.tuples(amps, amps, amps), max_size=3))
def test_the_least_shed_is_found(excess, cars):
    """Against a search over every current each car may shed (whole amps and halves): the LP finds no more
    than the search, and no less than the per-phase count of what the cars could give on the phases over."""
    shed = shed_amps(excess, cars)
    best, per_phase = brute_force(excess, cars)
    assert best is not None
    assert per_phase - 1e-6 <= shed <= best + 1e-6
