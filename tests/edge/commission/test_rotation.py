"""Phase-rotation detection: which grid phases moved -> which wiring (table and property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from edge.commission.rotation import Step, config_lines, decide
from edge.dlm.phases import ROTATIONS, phase_map, to_site

BASE = (10.0, 12.0, 8.0)


def step_of(actual_rotation: str, car_phases: int, amps: float = 16.0, base=BASE, inverted: int | None = None,
            charger_phases: int = 3, phase: str = "L1") -> Step:
    """What the meter shows when a car of `car_phases` on a charger wired `actual_rotation` draws `amps`."""
    draw = tuple(amps if i < car_phases else 0.0 for i in range(charger_phases))
    mapping = phase_map(charger_phases, actual_rotation, phase)
    during = tuple(b + r for b, r in zip(base, to_site(draw, mapping)))
    sign = [(-1 if i == inverted else 1) for i in range(3)]
    return Step(amps, base, during, tuple(230 * b * s for b, s in zip(base, sign)),
                tuple(230 * d * s for d, s in zip(during, sign)))


@pytest.mark.parametrize("actual,configured,verdict,suggested", [
    ("RST", "RST", "ok", None),
    ("STR", "RST", "mismatch", "STR"),       # the charger's L1 on grid L2
    ("TRS", "RST", "mismatch", "TRS"),       # on grid L3
    ("SRT", "RST", "mismatch", "STR"),       # L1 on grid L2: a 1-phase car cannot tell SRT from STR
    ("SRT", "SRT", "ok", None),
    ("RTS", "RST", "ok", None),              # same L1: what a 1-phase car can see agrees
])
def test_a_1_phase_car_shows_where_the_chargers_l1_is(actual, configured, verdict, suggested):
    finding = decide(step_of(actual, 1), charger_phases=3, configured=configured)
    assert (finding.verdict, finding.suggested) == (verdict, suggested)
    assert finding.moved == (phase_map(3, actual)[0],)


def test_a_2_phase_car_narrows_to_the_pair():
    finding = decide(step_of("TRS", 2), charger_phases=3, configured="RST")
    assert finding.verdict == "mismatch" and set(finding.candidates) == {"TRS", "RTS"}
    assert finding.suggested == "TRS" and finding.alternatives == ("RTS",)


def test_a_3_phase_car_cannot_show_the_rotation():
    finding = decide(step_of("STR", 3), charger_phases=3, configured="RST")
    assert finding.verdict == "undetermined" and "1-phase car" in finding.note


@pytest.mark.parametrize("actual,configured,verdict", [("L2", "L2", "ok"), ("L3", "L1", "mismatch")])
def test_a_1_phase_charger_shows_its_phase(actual, configured, verdict):
    finding = decide(step_of("RST", 1, charger_phases=1, phase=actual), charger_phases=1, configured=configured)
    assert finding.verdict == verdict
    if verdict == "mismatch":
        assert finding.suggested == actual
        assert config_lines("CP-9", 1, finding) == ["[[chargers]]", 'id = "CP-9"', f'phase = "{actual}"']


def test_nothing_moved_means_no_car_drawing():
    finding = decide(Step(16, BASE, BASE, BASE, BASE), charger_phases=3, configured="RST")
    assert finding.verdict == "no-draw" and finding.suggested is None


def test_a_building_load_changing_during_the_step_is_unclear():
    step = step_of("RST", 1)
    noisy = Step(step.step, step.before_current, (step.during_current[0], step.during_current[1] + 6,
                                                    step.during_current[2]), step.before_power, step.during_power)
    assert decide(noisy, charger_phases=3, configured="RST").verdict == "unclear"


def test_an_inverted_ct_is_named():
    finding = decide(step_of("STR", 1, inverted=1), charger_phases=3, configured="STR")
    assert finding.verdict == "ok" and finding.inverted_ct == (1,)


@given(actual=st.sampled_from(ROTATIONS), configured=st.sampled_from(ROTATIONS), car_phases=st.integers(1, 2),
       amps=st.floats(6, 32), base=st.tuples(*[st.floats(0, 50)] * 3))
def test_the_suggestion_always_fits_what_was_seen_and_ok_means_the_configured_one_fits(
        actual, configured, car_phases, amps, base):
    finding = decide(step_of(actual, car_phases, amps, base), charger_phases=3, configured=configured)
    # The true wiring is always among the candidates, whatever the base load.
    assert actual in finding.candidates
    seen = set(phase_map(3, actual)[:car_phases])
    if finding.verdict == "ok":
        assert set(phase_map(3, configured)[:car_phases]) == seen
    else:
        assert finding.verdict == "mismatch"
        assert set(phase_map(3, configured)[:car_phases]) != seen
        assert set(phase_map(3, finding.suggested)[:car_phases]) == seen
