"""What the load manager keeps of each connector (edge/dlm/tracking.py) and learns from it for the planner."""

from __future__ import annotations

from hypothesis import given, strategies as st

from edge.dlm.tracking import HELD_OVER, learn_take

amps = st.floats(0.0, 80.0)


def test_what_a_car_was_found_to_take_is_what_it_drew_then_and_only_ever_rises():
    """`takes` found 17 A (16 A drawn plus the allocator's 1 A hold): the car took 16 A. Forgotten by
    `takes` (None: it draws its limit) it stays; a car found drawing under its minimum (3 A: on a timer,
    or conditioning its battery) says nothing of its maximum; a later, higher finding replaces it."""
    assert learn_take(0.0, 16.0 + HELD_OVER, 6.0) == 16.0
    assert learn_take(16.0, None, 6.0) == 16.0
    assert learn_take(0.0, 3.0 + HELD_OVER, 6.0) == 0.0
    assert learn_take(16.0, 10.0 + HELD_OVER, 6.0) == 16.0
    assert learn_take(16.0, 20.0 + HELD_OVER, 6.0) == 20.0


@given(amps, st.one_of(st.none(), amps), st.sampled_from([6.0, 8.0, 10.0]))
def test_a_learned_take_never_falls_and_is_never_under_the_minimum(took, found, minimum):
    learned = learn_take(took, found, minimum)
    assert learned >= took
    assert learned == took or learned >= minimum
