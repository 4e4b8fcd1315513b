"""What the load manager keeps of each connector (edge/dlm/tracking.py) and learns from it for the planner."""

from __future__ import annotations

from hypothesis import given, strategies as st

from edge.dlm.estimate import Command, Sample, bounds
from edge.dlm.model import Evse
from edge.dlm.tracking import HELD_OVER, SAMPLES_KEPT, Track, history, learn_take, prune

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


def test_the_commands_kept_say_what_was_in_force_at_any_reading_kept():
    """The estimator reads a car at the instant of any meter reading kept (SAMPLES_KEPT back): at the
    first one since another car's old sample, say. With only what its latest samples needed, a car
    limited to 13.8 A for a minute looked limited to its session's 0 A default profile 20 s ago, drawing
    nothing there: another car's hold took it for rising by its whole draw since, and held nothing."""
    evse = Evse("A", 1, "grid", (0, 1, 2))
    track = Track(arrived=0.0)
    track.commands = tuple(Command(13.8 + (i % 2) / 10, t, t + 0.1, True) for i, t in enumerate(range(5, 100, 5)))
    track.samples = tuple(Sample(t, (13.8,) * 3, interval=6.0) for t in range(2, 100, 5))
    prune(track, 100.0, 5.0)
    assert track.commands[0].answered_at < 100.0 - SAMPLES_KEPT - 5.0
    car = history(evse, track, initial=0.0, steered=True, now=100.0, booted_at=None)
    assert bounds(car, 100.0 - SAMPLES_KEPT + 1).least[0] > 13.0
