"""The energy a controller's overload bought its cars, counted in what the cars would have had to shed."""

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


phases = st.floats(min_value=-20, max_value=20, allow_nan=False)
draw = st.one_of(st.just(0.0), st.floats(min_value=0.5, max_value=32, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(excess=st.tuples(phases, phases, phases), cars=st.lists(st.tuples(draw, draw, draw), max_size=5))
def test_never_below_the_per_phase_count_and_never_above_what_the_cars_draw(excess, cars):
    shed = shed_amps(excess, cars)
    per_phase = sum(min(e, sum(c[p] for c in cars)) for p, e in enumerate(excess) if e > 1e-9)
    on_over = sum(sum(c) for c in cars if any(c[p] > 1e-9 and excess[p] > 1e-9 for p in range(3)))
    assert per_phase - 1e-6 <= shed <= on_over + 1e-6
