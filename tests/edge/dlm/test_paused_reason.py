"""The reason a paused car gets never contradicts itself: what is left is shown rounded down,
so a phase 0.04 A short of the minimum does not read "6.0 A left, below the 6 A minimum"."""

from __future__ import annotations

from hypothesis import given, strategies as st

from edge.dlm.allocate import _paused_reason
from edge.dlm.model import Inputs, Topology


def reason(left: float, need: float = 6.0) -> str:
    inputs = Inputs(topology=Topology.__new__(Topology), meters={}, connectors=(), now=0.0)
    return _paused_reason(inputs, ("grid", 1), left, need, {"grid": (0.0, False)}, False)


def test_just_under_the_minimum_is_not_shown_as_the_minimum() -> None:
    assert reason(5.96).startswith("paused: circuit grid L2 has 5.9 A left, below the 6 A minimum")
    assert "has 0.0 A left" in reason(-3.0)


@given(st.floats(min_value=0.0, max_value=5.999, allow_nan=False), st.sampled_from([6.0, 8.0, 10.0]))
def test_the_amount_shown_is_below_the_minimum(left: float, need: float) -> None:
    shown = float(reason(left, need).split(" has ")[1].split(" A left")[0])
    assert shown < need and shown <= left
