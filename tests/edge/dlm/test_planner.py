"""The departure-aware planner (edge/dlm/planner.py) and the allocator's `scheduled` strategy that takes its
targets: early leavers first, per-phase limits on every circuit of a car's path, the minimum current, and,
over random sites and needs, never a plan or an allocation above any circuit phase's limit."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.dlm.allocate import allocate
from edge.dlm.model import Circuit, ConnectorState, Evse, Inputs, Topology
from edge.dlm.phases import ROTATIONS, phase_map
from edge.dlm.planner import POLICIES, Need, PlanCar, PlanInputs, capacity_of, known_maxima, plan, plan_cars
from tests.edge.dlm.test_allocate import sites

HOUR = 3600.0
GRID3 = (("grid", 0), ("grid", 1), ("grid", 2))


def kwh(amps: float, phases: int, hours: float) -> float:
    return amps * phases * 230.0 * hours


def car(name, *, leaves_h, kwh_wanted, phases=3, on=GRID3, mx=32.0, mn=6.0, priority=False):
    return PlanCar((name, 1), on, phases, mn, mx, kwh_wanted * 1000.0, leaves_h * HOUR, priority)


def per_resource(cars, amps):
    out: dict = {}
    for c in cars:
        for r in c.resources:
            out[r] = out.get(r, 0.0) + amps.get(c.key, 0.0)
    return out


# --- tables --------------------------------------------------------------------------------------

def planned_wh(result, key, phases=3):
    """Energy a plan's schedule gives a car: the LP's slots grow, the greedy's are all slot_s."""
    lengths = result.slots or (result.slot_s,) * len(result.schedule[key])
    return sum(a * s for a, s in zip(result.schedule[key], lengths)) * phases * 230 / HOUR


def test_the_early_leaver_gets_its_energy_first():
    early = car("early", leaves_h=1, kwh_wanted=kwh(32, 3, 0.5) / 1000)   # half an hour at full speed
    late = car("late", leaves_h=8, kwh_wanted=30)
    result = plan(PlanInputs((late, early), {r: 32.0 for r in GRID3}, 0.0))
    assert result.solver == "lp"
    assert result.targets == {("early", 1): 32.0, ("late", 1): 0.0}
    assert list(result.targets)[0] == ("early", 1)                      # served first
    # The plan delivers the early car's whole need before it leaves, and the late car's.
    assert planned_wh(result, ("early", 1)) == pytest.approx(early.energy_wh, rel=1e-4)
    assert planned_wh(result, ("late", 1)) == pytest.approx(late.energy_wh, rel=1e-4)
    assert sum(result.slots) == 8 * HOUR and result.slots[0] == 300.0 and result.slots[-1] == HOUR
    # The greedy (the fallback) too, the late car in blocks at its 6 A minimum.
    greedy = plan(PlanInputs((late, early), {r: 32.0 for r in GRID3}, 0.0, budget_s=0.0))
    assert greedy.solver.startswith("greedy") and greedy.targets == result.targets
    assert planned_wh(greedy, ("early", 1)) == pytest.approx(early.energy_wh, rel=1e-6)
    slot_h = greedy.slot_s / HOUR
    assert late.energy_wh <= planned_wh(greedy, ("late", 1)) < late.energy_wh + 6 * 3 * 230 * slot_h
    assert greedy.schedule[("late", 1)][0] == 0.0


def test_on_a_binding_phase_the_3_phase_car_gets_the_amps():
    # L1 has 16 A free, L2 and L3 plenty. Both cars leave in two hours and cannot finish: on L1 an
    # ampere is three times the energy in the 3-phase car. The greedy, blind to that, serves by key.
    one = car("a-one", leaves_h=2, kwh_wanted=50, phases=1, on=(("grid", 0),))
    three = car("b-three", leaves_h=2, kwh_wanted=50)
    capacity = {("grid", 0): 16.0, ("grid", 1): 100.0, ("grid", 2): 100.0}
    lp = plan(PlanInputs((one, three), capacity, 0.0))
    greedy = plan(PlanInputs((one, three), capacity, 0.0, budget_s=0.0))
    assert lp.targets == {("b-three", 1): 16.0, ("a-one", 1): 0.0}
    assert greedy.targets == {("a-one", 1): 16.0, ("b-three", 1): 0.0}
    lp_wh = planned_wh(lp, ("b-three", 1)) + planned_wh(lp, ("a-one", 1), 1)
    greedy_wh = planned_wh(greedy, ("b-three", 1)) + planned_wh(greedy, ("a-one", 1), 1)
    assert lp_wh == pytest.approx(kwh(16, 3, 2), rel=1e-4) and greedy_wh == pytest.approx(kwh(16, 1, 2), rel=1e-4)


def test_when_the_solver_fails_or_runs_out_of_time_the_plan_is_the_greedy():
    cars = tuple(car(f"c{i:02d}", leaves_h=1 + i / 4, kwh_wanted=40) for i in range(30))
    capacity = {r: 100.0 for r in GRID3}
    late = plan(PlanInputs(cars, capacity, 0.0, budget_s=1e-9))      # HiGHS stops at its time limit
    assert late.solver.startswith("greedy: HiGHS") and "time limit" in late.solver.lower()
    assert late.targets == plan(PlanInputs(cars, capacity, 0.0, budget_s=0.0)).targets


def test_a_car_whose_need_fills_every_slot_left_is_served_now_whatever_its_departure():
    # The late car cannot finish even at its maximum the whole time: every minute it waits is lost.
    # EDF would give the early car everything now; the plan gives the late car its maximum and the
    # early car the rest, which still delivers its need before it leaves.
    early = car("early", leaves_h=2, kwh_wanted=10)
    late = car("late", leaves_h=4, kwh_wanted=60, mx=16.0)
    capacity = {r: 32.0 for r in GRID3}
    assert plan(PlanInputs((early, late), capacity, 0.0)).targets == {("late", 1): 16.0, ("early", 1): 16.0}
    assert plan(PlanInputs((early, late), capacity, 0.0, "edf")).targets == {("early", 1): 32.0, ("late", 1): 0.0}
    assert plan(PlanInputs((early, late), capacity, 0.0, "llf")).targets[("late", 1)] == 16.0


def test_a_1_phase_car_and_a_3_phase_car_under_per_phase_limits():
    # L1 has 16 A left, L2 and L3 32 A. The 3-phase car leaves first and takes L1's 16 A (and 16 A
    # of L2 and L3); the 1-phase car on L2 still gets L2's other 16 A.
    three = car("three", leaves_h=2, kwh_wanted=50, mx=32.0)
    single = car("single", leaves_h=6, kwh_wanted=50, phases=1, on=(("grid", 1),))
    capacity = {("grid", 0): 16.0, ("grid", 1): 32.0, ("grid", 2): 32.0}
    for policy in POLICIES:
        result = plan(PlanInputs((three, single), capacity, 0.0, policy))
        used = per_resource((three, single), result.targets)
        assert all(used[r] <= capacity[r] + 1e-9 for r in used), policy
        if policy in ("scheduled", "edf"):
            assert result.targets == {("three", 1): 16.0, ("single", 1): 16.0}, policy


def test_a_sub_circuit_on_the_path_binds_as_the_grid_does():
    on = (("garage", 0), ("garage", 1), ("garage", 2), *GRID3)
    a, b = car("a", leaves_h=1, kwh_wanted=40, on=on), car("b", leaves_h=3, kwh_wanted=40, on=on)
    capacity = {**{r: 100.0 for r in GRID3}, **{("garage", p): 40.0 for p in range(3)}}
    assert plan(PlanInputs((a, b), capacity, 0.0)).targets == {("a", 1): 32.0, ("b", 1): 8.0}


def test_no_car_is_planned_between_zero_and_its_minimum():
    # The first car needs 14 A for its hour; the second must have the 6 A left now (the hour after is not
    # enough for it); 0 A are left for the third, which waits rather than be planned at a useless 0 A.
    cars = (car("c0", leaves_h=1, kwh_wanted=kwh(14, 3, 1) / 1000), car("c1", leaves_h=2, kwh_wanted=40),
            car("c2", leaves_h=3, kwh_wanted=40))
    # (The greedy; the LP serves c0 at 20 A first, as it takes the same energy: c1 cannot finish either way.)
    result = plan(PlanInputs(cars, {r: 20.0 for r in GRID3}, 0.0, budget_s=0.0))
    assert result.targets == {("c0", 1): pytest.approx(14.0), ("c1", 1): pytest.approx(6.0), ("c2", 1): 0.0}
    assert plan(PlanInputs(cars, {r: 20.0 for r in GRID3}, 0.0)).targets == {("c0", 1): 20.0, ("c1", 1): 0.0,
                                                                            ("c2", 1): 0.0}
    # A car that wants less than its minimum in the slot still gets the minimum, if there is room.
    nearly_done = car("done", leaves_h=4, kwh_wanted=0.1)
    for budget in (0.0, 0.5):
        assert plan(PlanInputs((nearly_done,), {r: 20.0 for r in GRID3}, 0.0, budget_s=budget)
                    ).targets == {("done", 1): 6.0}



def test_cars_without_a_need_take_what_is_left_and_gone_or_full_cars_nothing():
    known = car("known", leaves_h=1, kwh_wanted=5)
    unknown = PlanCar(("unknown", 1), GRID3, 3)
    full = car("full", leaves_h=5, kwh_wanted=0)
    gone = car("gone", leaves_h=0, kwh_wanted=10)
    greedy = plan(PlanInputs((unknown, known, full, gone), {r: 40.0 for r in GRID3}, 0.0, budget_s=0.0)).targets
    assert greedy[("known", 1)] == pytest.approx(min(32.0, 5000 / (3 * 230 * 300 / 3600)))
    assert greedy[("unknown", 1)] == pytest.approx(40.0 - greedy[("known", 1)])
    # The LP sees further: the other car takes at most 32 A, so the known car at 8 A beside it still
    # gets its 5 kWh before it leaves, and none of the 40 A is idle after the known car is done.
    lp = plan(PlanInputs((unknown, known, full, gone), {r: 40.0 for r in GRID3}, 0.0))
    assert lp.targets[("unknown", 1)] == 32.0 and lp.targets[("known", 1)] == pytest.approx(8.0)
    assert planned_wh(lp, ("known", 1)) == pytest.approx(5000.0, rel=1e-4)
    for targets in (greedy, lp.targets):
        assert targets[("full", 1)] == targets[("gone", 1)] == 0.0


def test_round_robin_shares_equally_and_the_left_out_take_turns():
    cars = tuple(car(f"c{i}", leaves_h=8, kwh_wanted=40) for i in range(4))
    capacity = {r: 20.0 for r in GRID3}
    first = plan(PlanInputs(cars, capacity, 0.0, "round_robin", slot_s=60)).targets
    later = plan(PlanInputs(cars, capacity, 60.0, "round_robin", slot_s=60)).targets
    assert sorted(first.values()) == [0.0, pytest.approx(20 / 3, abs=1e-3), pytest.approx(20 / 3, abs=1e-3),
                                      pytest.approx(20 / 3, abs=1e-3)]
    assert {k for k, a in first.items() if a} != {k for k, a in later.items() if a}


def test_a_prioritised_car_comes_before_every_early_leaver():
    vip = car("vip", leaves_h=9, kwh_wanted=60, priority=True)
    early = car("early", leaves_h=1, kwh_wanted=20)
    for policy in POLICIES:
        assert plan(PlanInputs((early, vip), {r: 32.0 for r in GRID3}, 0.0, policy)).targets[("vip", 1)] == 32.0


# --- from the load manager's view, and into the allocator ----------------------------------------

def site() -> Topology:
    evses = (Evse("A", 1, "grid", phase_map(3, "RST")), Evse("B", 1, "grid", phase_map(3, "STR")),
             Evse("C", 1, "grid", phase_map(1, phase="L2")))
    return Topology((Circuit("grid", 40.0, meter="m"),), evses, 1.0)


def test_the_allocator_serves_the_plan_in_its_order_and_pauses_who_waits():
    topology = site()
    states = tuple(ConnectorState(e.key, session=True, arrived=float(i), running_since=float(i))
                   for i, e in enumerate(topology.evses))
    inputs = Inputs(topology, {"grid": (10.0, 10.0, 10.0)}, states, 100.0, "scheduled")
    needs = {("A", 1): Need(2 * HOUR, 60_000.0), ("B", 1): Need(1 * HOUR, 10_000.0), ("C", 1): Need(9 * HOUR, 5_000.0)}
    cars = plan_cars(topology, states, needs)
    assert {c.key: c.resources for c in cars}[("C", 1)] == (("grid", 1),)
    capacity = capacity_of(allocate(inputs), topology.margin)
    assert capacity == {("grid", p): 29.0 for p in range(3)}
    targets = plan(PlanInputs(cars, capacity, 100.0)).targets
    decided = allocate(replace(inputs, targets=targets)).decisions
    # B leaves first and gets its maximum the plan asked for; A gets what is left; C waits for its slot.
    assert list(targets)[:2] == [("B", 1), ("A", 1)]
    assert decided[("B", 1)].limit == pytest.approx(min(targets[("B", 1)], 29.0), abs=0.1)
    assert decided[("B", 1)].limit + decided[("A", 1)].limit <= 29.0 + 1e-9
    assert targets[("C", 1)] == 0.0 and decided[("C", 1)].limit == 0.0
    assert "scheduled later" in decided[("C", 1)].reason
    # Without a plan yet, `scheduled` is `fair`.
    assert allocate(inputs).decisions == allocate(replace(inputs, strategy="fair")).decisions


def test_room_found_after_the_plan_goes_to_the_car_the_plan_gave_all_the_room():
    # The plan is made at one instant against the estimator's view, which a car's ramp or a
    # stale sample can make 20 A too low for a second: here A (leaving in half an hour, wanting
    # more than it can take) gets the 20 A that seemed free, B (no need) waits. Held for the plan
    # period, that target would leave the 20 A found a second later to be shared fairly (A 20, B
    # 20); handed as what A wants, A gets its 32 A and B the rest, as the plan's rule says.
    evses = (Evse("A", 1, "grid", phase_map(3, "RST")), Evse("B", 1, "grid", phase_map(3, "RST")))
    topology = Topology((Circuit("grid", 42.0, meter="m"),), evses, 0.0)
    states = tuple(ConnectorState(e.key, session=True, arrived=float(i), running_since=float(i))
                   for i, e in enumerate(evses))
    needs = {("A", 1): Need(1800.0, 20_000.0)}
    for budget in (0.5, 0.0):                       # the LP and the greedy alike
        made = plan(PlanInputs(plan_cars(topology, states, needs), {("grid", p): 20.0 for p in range(3)}, 0.0,
                               budget_s=budget))
        assert made.targets[("A", 1)] == 20.0 and made.targets[("B", 1)] == 0.0
        handed = {k: a for k, a in made.handed().items() if k in needs}      # as the load manager keeps them
        assert handed == {("A", 1): 32.0}
        quiet = Inputs(topology, {"grid": (2.0, 2.0, 2.0)}, states, 10.0, "scheduled", targets=handed)
        decided = allocate(quiet).decisions
        assert (decided[("A", 1)].limit, decided[("B", 1)].limit) == (32.0, 8.0)
        # And when the room is as planned, or less, the plan's split holds: A first, B its minimum.
        busy = replace(quiet, meters={"grid": (16.0, 16.0, 16.0)})
        decided = allocate(busy).decisions
        assert (decided[("A", 1)].limit, decided[("B", 1)].limit) == (20.0, 6.0)


def test_slot_0_is_planned_in_whole_amps():
    # 25.5 A free for two cars: whole amps (a change of target is then at least the 1 A hysteresis
    # step), the half ampere left unplanned; never above what is free, never below a minimum.
    cars = (car("a", leaves_h=6, kwh_wanted=20), car("b", leaves_h=5, kwh_wanted=20), car("c", leaves_h=1, kwh_wanted=2))
    for budget in (0.5, 0.0):
        targets = plan(PlanInputs(cars, {r: 25.5 for r in GRID3}, 0.0, budget_s=budget)).targets
        assert all(x == int(x) and (x == 0 or x >= 6) for x in targets.values()), targets
        assert sum(targets.values()) == 25.0, targets


def test_a_car_that_has_not_shown_its_maximum_is_not_put_off_as_if_it_took_32_a():
    # K leaves in an hour and needs 16 A for it; U leaves in two and needs 16 A for both. 32 A free.
    # Counted on at its EVSE's 32 A, U could wait half an hour and finish at 32 A: the plan pauses it
    # for K. Half the cars take 16 A: such a U never finishes. Not known, U runs now beside K.
    k = car("k", leaves_h=1, kwh_wanted=kwh(16, 3, 1) / 1000)
    u = car("u", leaves_h=2, kwh_wanted=kwh(16, 3, 2) / 1000)
    free = {r: 32.0 for r in GRID3}
    assert plan(PlanInputs((k, u), free, 0.0)).targets == {("k", 1): 32.0, ("u", 1): 0.0}
    for budget in (0.5, 0.0):
        result = plan(PlanInputs((k, replace(u, max_known=False)), free, 0.0, budget_s=budget))
        assert result.targets == {("k", 1): 16.0, ("u", 1): 16.0}, (budget, result.solver)
        # Later slots count on 16 A at most; now it may take its EVSE's 32 A (the allocator's rest).
        assert max(result.schedule[("u", 1)][1:]) <= 16.0 + 1e-6
        assert result.handed()[("u", 1)] == 32.0


def test_plan_cars_knows_a_cars_maximum_once_it_has_drawn_less_than_its_limit():
    topology = Topology((Circuit("grid", 63.0),), (Evse("CP1", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    needs = {("CP1", 1): Need(2 * HOUR, 10_000.0)}
    unknown = ConnectorState(("CP1", 1), session=True, arrived=0.0)
    [planned] = plan_cars(topology, (unknown,), needs)
    assert (planned.max_current, planned.max_known) == (32.0, False)
    [planned] = plan_cars(topology, (replace(unknown, demand=17.0),), needs)
    assert (planned.max_current, planned.max_known) == (17.0, True)


def test_plan_cars_keeps_what_a_car_was_found_to_take_for_its_whole_session():
    # A 16 A car on a 32 A EVSE was found drawing 16 A under a higher limit (Track.took 16). Limited below
    # that since, it draws its limit and the load manager no longer knows its demand; the plan still counts
    # on 16 A, now and later (not its EVSE's 32 A now: what the plan gave it above 16 A went unused).
    # Planned at its demand (17 A: what it drew plus the allocator's hold), every 16 A car held an ampere
    # it never drew on the phase that binds.
    topology = Topology((Circuit("grid", 63.0),), (Evse("CP1", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    needs = {("CP1", 1): Need(2 * HOUR, 10_000.0)}
    state = ConnectorState(("CP1", 1), session=True, arrived=0.0, measured=(12.0, 12.0, 12.0))
    for demand, took, planned_at in ((None, {}, (32.0, False)), (None, {("CP1", 1): 16.0}, (16.0, True)),
                                     (17.0, {("CP1", 1): 16.0}, (16.0, True)), (17.0, {}, (17.0, True)),
                                     (0.0, {("CP1", 1): 16.0}, (6.0, True)),        # full now: its minimum
                                     (None, {("CP1", 1): 40.0}, (32.0, True))):     # never above the EVSE's
        [planned] = plan_cars(topology, (replace(state, demand=demand),), needs, took=took)
        assert (planned.max_current, planned.max_known) == planned_at, (demand, took)
    # Two cars and 33 A: the 16 A car found at 16 A leaves first and gets 16 A, the other the 17 A left.
    site = Topology((Circuit("grid", 34.0),), (Evse("a", 1, "grid", phase_map(3), max_current=32.0),
                                               Evse("b", 1, "grid", phase_map(3), max_current=32.0)), 1.0)
    states = (ConnectorState(("a", 1), session=True, demand=17.0),
              ConnectorState(("b", 1), session=True, measured=(31.0, 31.0, 31.0)))
    wants = {("a", 1): Need(1 * HOUR, kwh(16, 3, 1)), ("b", 1): Need(8 * HOUR, kwh(32, 3, 4))}
    free = {r: 33.0 for r in GRID3}
    for took, targets in (({}, {("a", 1): 17.0, ("b", 1): 16.0}), ({("a", 1): 16.0}, {("a", 1): 16.0, ("b", 1): 17.0})):
        cars = plan_cars(site, states, wants, took=took)
        assert plan(PlanInputs(cars, free, 0.0)).targets == targets, took


def test_what_the_plan_knows_of_the_cars_maxima_changes_when_a_car_shows_what_it_takes():
    # The load manager and the day bench re-plan when known_maxima changes, not only every 300 s.
    topology = Topology((Circuit("grid", 63.0),), (Evse("CP1", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    state = ConnectorState(("CP1", 1), session=True, measured=(12.0, 12.0, 12.0))
    assert known_maxima(plan_cars(topology, (state,), {})) == frozenset()
    assert known_maxima(plan_cars(topology, (state,), {}, took={("CP1", 1): 16.0})) == {("CP1", 1)}
    assert known_maxima(plan_cars(topology, (state,), {}, drew={("CP1", 1): 31.0})) == {("CP1", 1)}


# --- properties ----------------------------------------------------------------------------------

@st.composite
def planned_sites(draw):
    n_circuits = draw(st.integers(1, 4))
    parents = [None] + [f"c{draw(st.integers(0, i - 1))}" for i in range(1, n_circuits)]
    circuits = tuple(Circuit(f"c{i}", draw(st.floats(0, 100)), parent=parents[i]) for i in range(n_circuits))
    topology = Topology(circuits, (), 0.0)
    cars = []
    for j in range(draw(st.integers(0, 12))):
        phases = draw(st.sampled_from([1, 3]))
        mapping = phase_map(phases, draw(st.sampled_from(ROTATIONS)), draw(st.sampled_from(["L1", "L2", "L3"])))
        circuit = f"c{draw(st.integers(0, n_circuits - 1))}"
        used = mapping[:draw(st.integers(1, len(mapping)))]
        mn = draw(st.sampled_from([6.0, 6.0, 8.0, 10.0]))
        cars.append(PlanCar((f"E{j}", 1), tuple((c, p) for c in topology.paths[circuit] for p in used), len(used),
                            mn, draw(st.floats(0, 63)),
                            draw(st.one_of(st.just(math.inf), st.floats(0, 100_000))),
                            draw(st.one_of(st.just(math.inf), st.floats(0, 24 * HOUR))), draw(st.booleans()),
                            draw(st.booleans())))
    capacity = {(c.id, p): draw(st.floats(-20, 100)) for c in circuits for p in range(3)}
    return PlanInputs(tuple(cars), capacity, draw(st.floats(0, 3600)), draw(st.sampled_from(POLICIES)),
                      draw(st.sampled_from([60.0, 300.0, 900.0])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planned_sites())
def test_a_plan_never_puts_a_circuit_phase_above_what_it_has_in_any_slot(inputs):
    result = plan(inputs)
    assert set(result.targets) == {c.key for c in inputs.cars}
    for c in inputs.cars:
        amps = result.targets[c.key]
        assert amps == 0 or c.min_current - 1e-9 <= amps <= c.max_current + 1e-9, (c, amps)
    slots = max((len(s) for s in result.schedule.values()), default=0)
    for k in range(slots):
        used = per_resource(inputs.cars, {key: s[k] for key, s in result.schedule.items()})
        assert all(used[r] <= max(0.0, inputs.capacity[r]) + 1e-6 for r in used), k
    used = per_resource(inputs.cars, result.targets)
    assert all(used[r] <= max(0.0, inputs.capacity[r]) + 1e-6 for r in used)
    if inputs.policy == "scheduled":
        # A car that has not shown its maximum is counted on at no more than 16 A (or its minimum,
        # or its EVSE's maximum if lower) after slot 0, by the LP and the greedy alike.
        for c in inputs.cars:
            if not c.max_known and c.key in result.schedule:
                top = min(c.max_current, max(c.min_current, 16.0))
                assert all(a <= top + 1e-6 for a in result.schedule[c.key][1:]), (c, result.schedule[c.key])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites(), st.data())
def test_scheduled_allocation_never_puts_a_circuit_phase_above_its_limit(inputs, data):
    keys = [e.key for e in inputs.topology.evses]
    order = data.draw(st.permutations(keys))
    targets = {k: data.draw(st.floats(0, 80)) for k in order[:data.draw(st.integers(0, len(order)))]}
    inputs = replace(inputs, strategy="scheduled", targets=targets)
    a = allocate(inputs)
    for cid, load in a.circuits.items():
        circuit = inputs.topology.by_id[cid]
        for p, phase in enumerate(load.phases):
            room = circuit.limit - inputs.topology.margin - phase.unmanaged - phase.reserved
            assert phase.allocated <= max(0.0, room) + 1e-6, (cid, p, phase)
    for key, d in a.decisions.items():
        evse = inputs.topology.evse_by_key[key]
        assert d.limit == 0 or evse.min_current - 1e-9 <= d.limit <= evse.max_current + 1e-9


def test_the_solver_is_loaded_only_when_a_plan_needs_it():
    """scipy and numpy (about 40 MB on a Pi) are not imported with the edge: only a `scheduled` site
    loads them (edge/app.py, in a thread at start-up), and the LP loads them itself if needed."""
    import subprocess
    import sys
    code = ("import sys, edge.app\n"
            "assert 'scipy' not in sys.modules and 'numpy' not in sys.modules, 'imported with the edge'\n"
            "from edge.dlm import optimiser\n"
            "assert optimiser.load() and 'scipy.optimize' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_plan_cars_knows_a_car_at_its_evses_maximum_once_it_has_drawn_it():
    # A car drawing (or having drawn in this session) within 2 A of its EVSE's 32 A takes 32 A:
    # later slots count on 32 A, not 16. One drawing 20 A has not shown it takes more than 16.
    topology = Topology((Circuit("grid", 63.0),), (Evse("CP1", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    needs = {("CP1", 1): Need(2 * HOUR, 10_000.0)}
    unknown = ConnectorState(("CP1", 1), session=True, arrived=0.0)
    for measured, drew, known in (((31.0, 31.0, 31.0), {}, True), ((20.0, 20.0, 20.0), {}, False),
                                  ((10.0, 10.0, 10.0), {("CP1", 1): 30.6}, True),
                                  ((10.0, 10.0, 10.0), {("CP1", 1): 29.0}, False)):
        [planned] = plan_cars(topology, (replace(unknown, measured=measured),), needs, drew)
        assert (planned.max_current, planned.max_known) == (32.0, known), (measured, drew)


def test_a_car_that_said_its_maximum_is_planned_at_it_as_known():
    # ISO 15118: the car said it takes 16 A per phase (NotifyEVChargingNeeds' evMaxCurrent), on a 32 A EVSE.
    topology = Topology((Circuit("grid", 63.0),), (Evse("CP1", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    needs = {("CP1", 1): Need(2 * HOUR, 10_000.0)}
    state = ConnectorState(("CP1", 1), session=True, arrived=0.0)
    [planned] = plan_cars(topology, (state,), needs, said={("CP1", 1): 16.0})
    assert (planned.max_current, planned.max_known) == (16.0, True)
    [planned] = plan_cars(topology, (state,), needs, said={("CP1", 1): 125.0})   # more than the EVSE's
    assert (planned.max_current, planned.max_known) == (32.0, True)
    # Known at 32 A, it is put off for an early leaver (test above); said 16 A, it runs now.
    k = car("k", leaves_h=1, kwh_wanted=kwh(16, 3, 1) / 1000)
    u = car("u", leaves_h=2, kwh_wanted=kwh(16, 3, 2) / 1000)
    [said_16] = plan_cars(Topology((Circuit("grid", 63.0),), (Evse("u", 1, "grid", phase_map(3), max_current=32.0),),
                                   1.0), (ConnectorState(("u", 1), session=True),), {("u", 1): Need(2 * HOUR, u.energy_wh)},
                          said={("u", 1): 16.0})
    free = {r: 32.0 for r in GRID3}
    assert plan(PlanInputs((k, replace(u, max_current=said_16.max_current)), free, 0.0)).targets == {
        ("k", 1): 16.0, ("u", 1): 16.0}
