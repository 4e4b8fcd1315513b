"""Caps from outside the config (the cloud's limits): they only lower a circuit's
limit, end by themselves, and the allocator keeps every phase under them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from edge.dlm.allocate import allocate
from edge.dlm.caps import Cap, capped
from edge.dlm.model import Circuit, ConnectorState, Evse, Inputs, Topology
from edge.dlm.phases import phase_map

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SITE = Topology((Circuit("grid", 63.0), Circuit("garage", 32.0, parent="grid")),
                (Evse("A", 1, "garage", phase_map(3, "RST")), Evse("B", 1, "grid", phase_map(3, "RST"))))


def test_a_cap_lowers_the_limit_while_it_lasts():
    caps = {"grid": Cap("grid", 20.0, NOW + timedelta(hours=1), "demand response")}
    assert capped(SITE, caps, NOW).by_id["grid"].limit == 20.0
    assert capped(SITE, caps, NOW).by_id["garage"].limit == 32.0
    assert capped(SITE, caps, NOW + timedelta(hours=1)) is SITE          # over: the topology as configured


def test_a_cap_never_raises_a_limit():
    assert capped(SITE, {"garage": Cap("garage", 50.0)}, NOW) is SITE


@settings(max_examples=200, deadline=None)
@given(cap=st.floats(0, 80), on=st.sampled_from(["grid", "garage"]),
       measured=st.lists(st.floats(0, 40), min_size=2, max_size=2))
def test_no_phase_is_allocated_beyond_a_cap(cap, on, measured):
    topology = capped(SITE, {on: Cap(on, cap)}, NOW)
    states = tuple(ConnectorState((cid, 1), session=True, running_since=0.0, measured=(m, m, m))
                   for cid, m in zip("AB", measured))
    allocation = allocate(Inputs(topology, {}, states, 100.0, "fair"))
    limit = min(cap, {"grid": 63.0, "garage": 32.0}[on])
    for phase in allocation.circuits[on].phases:
        assert phase.allocated + phase.reserved <= limit + 1e-6
