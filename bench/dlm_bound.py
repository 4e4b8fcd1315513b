"""The most energy any controller could have delivered on a simulated day: a linear program.

Time is cut into intervals of at most `step_s` seconds, and again wherever a
car's transaction starts or it leaves. Variables: the mean current x[car, k]
(A per phase) of each car in each interval k it is there for. Constraints:

- 0 <= x <= min(car max, EVSE max);
- for every circuit, site phase and interval: the sum of x over the cars on
  that circuit (or below it) drawing on that phase <= limit - margin - the
  interval's mean base load on that circuit (the building, on the metered grid
  connection);
- per car: the energy over the day <= what its battery can still take.

Maximised: the energy, sum of x * phases * 230 V * the interval's length.

It knows the whole day in advance and ignores what a real controller must
respect: the 6 A minimum (a car charges at 6 A or not at all), ramps, the
pacing of increases, stale measurements. Means over an interval are a
relaxation of the per-second problem (any per-second schedule within the limits has
interval means within the mean limits), so the optimum is an upper bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from bench.dlm_day import PHASE_SHARE, VOLTAGE, Day, _profile
from edge.dlm.allocate import allocate
from edge.dlm.model import ConnectorState, Inputs, Topology
from edge.dlm.planner import PlanCar, PlanInputs, plan


@dataclass(frozen=True)
class Bound:
    energy_kwh: float
    step_s: int
    variables: int
    constraints: int
    solve_s: float


def lp_bound(day: Day, step_s: int = 60) -> Bound:
    topology = day.topology
    evses = topology.evses
    # Intervals: every `step_s`, cut again wherever a car starts or leaves, so a
    # car is either there for a whole interval or not at all.
    cuts = set(range(day.begin, day.end, step_s)) | {day.end}
    cuts |= {t for car in day.cars for t in (car.start, car.leave) if day.begin < t < day.end}
    edges = sorted(cuts)
    base = np.array(day.base, dtype=float)                          # seconds x 3
    summed = np.vstack([np.zeros((1, 3)), np.cumsum(base, axis=0)])
    starts = np.array(edges[:-1]) - day.begin
    stops = np.array(edges[1:]) - day.begin
    base_mean = (summed[stops] - summed[starts]) / (stops - starts)[:, None]   # intervals x 3

    columns: list[tuple[int, int]] = []          # (car index, interval)
    upper: list[float] = []
    per_wh: list[float] = []
    for i, car in enumerate(day.cars):
        evse = evses[car.evse]
        phases = min(car.phases, len(evse.phase_map))
        amps = min(car.max_current, evse.max_current)
        for k, (lo, hi) in enumerate(zip(edges, edges[1:])):
            if car.start <= lo and hi <= car.leave:
                columns.append((i, k))
                upper.append(amps)
                per_wh.append(phases * VOLTAGE * (hi - lo) / 3600.0)

    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    rhs: list[float] = []
    # Circuit phase rows: one per (circuit, phase, interval) that has a car on it.
    index: dict[tuple[str, int, int], int] = {}
    for j, (i, k) in enumerate(columns):
        car = day.cars[i]
        evse = evses[car.evse]
        used = evse.phase_map[:min(car.phases, len(evse.phase_map))]
        for circuit in topology.paths[evse.circuit]:
            for p in used:
                key = (circuit, p, k)
                if key not in index:
                    index[key] = len(rhs)
                    unmanaged = base_mean[k, p] if circuit == day.metered else 0.0
                    rhs.append(max(0.0, topology.by_id[circuit].limit - topology.margin - unmanaged))
                rows.append(index[key])
                cols.append(j)
                values.append(1.0)
    # Battery rows.
    for i, car in enumerate(day.cars):
        row = len(rhs)
        rhs.append(car.room_wh)
        for j, (owner, _) in enumerate(columns):
            if owner == i:
                rows.append(row)
                cols.append(j)
                values.append(per_wh[j])

    matrix = coo_matrix((values, (rows, cols)), shape=(len(rhs), len(columns))).tocsr()
    started = time.perf_counter()
    result = linprog(-np.array(per_wh), A_ub=matrix, b_ub=np.array(rhs), bounds=list(zip([0.0] * len(upper), upper)),
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"the LP bound did not solve: {result.message}")
    return Bound(energy_kwh=-result.fun / 1000.0, step_s=step_s, variables=len(columns), constraints=len(rhs),
                 solve_s=time.perf_counter() - started)


def ideal_fair(day: Day, step_s: int = 10) -> float:
    """kWh a perfect online `fair` controller would deliver: `allocate` itself,
    every `step_s`, told each car's exact demand (its maximum, or nothing once
    full) and the building's load, with no minimum current, acting at once,
    with no hysteresis and no stale measurement. Unlike the LP it does not know when cars leave, and it
    shares fairly rather than to maximise energy: the gap between the two is
    what no fair online controller can close; the gap between this and the
    simulated controller is what the controller's own rules cost."""
    topology = day.topology
    no_minimum = Topology(topology.circuits, tuple(replace(e, min_current=0.0) for e in topology.evses),
                          topology.margin)
    room = {car.tag: car.room_wh for car in day.cars}
    for t in range(day.begin, day.end, step_s):
        present = {}
        for car in day.cars:
            if car.start <= t < car.leave and room[car.tag] > 1e-6:
                present[topology.evses[car.evse].key] = car
        if not present:
            continue
        states = []
        for evse in topology.evses:
            car = present.get(evse.key)
            if car is None:
                states.append(ConnectorState(evse.key))
            else:
                states.append(ConnectorState(evse.key, session=True, arrived=float(car.start),
                                             running_since=float(car.start),
                                             phases_in_use=min(car.phases, len(evse.phase_map)),
                                             demand=min(car.max_current, evse.max_current), priority=car.priority))
        # The step's highest building load on each phase: the schedule stays within
        # every limit at every second, so it is one the LP allows too.
        window = day.base[t - day.begin:min(day.end, t + step_s) - day.begin]
        building = tuple(max(second[p] for second in window) for p in range(3))
        allocation = allocate(Inputs(no_minimum, {day.metered: building}, tuple(states), float(t), "fair",
                                     rotate_after=math.inf))
        for key, car in present.items():
            evse = topology.evse_by_key[key]
            phases = min(car.phases, len(evse.phase_map))
            amps = min(allocation.decisions[key].limit, car.max_current)
            seconds = min(step_s, car.leave - t, day.end - t)
            room[car.tag] = max(0.0, room[car.tag] - amps * phases * VOLTAGE * seconds / 3600.0)
    return sum(car.room_wh - room[car.tag] for car in day.cars) / 1000.0


def ideal_planned(day: Day, policy: str = "scheduled", step_s: int = 60, forecast: bool = False,
                  budget_s: float | None = None) -> float:
    """kWh the planner (edge/dlm/planner.py) delivers with a perfect execution: every
    `step_s` it is told each car's departure and what its battery can still take, and
    the step's highest building load (held over its whole horizon: it does not know
    the future); the cars follow its targets at once, with no ramp, no hysteresis and no
    stale measurement, keeping the 6 A minimum. The gap to the LP is the planner's (and
    the online problem's); the gap between this and the simulated strategy is what the
    controller's own rules cost. `budget_s` 0: the greedy planner instead of the LP."""
    topology = day.topology
    room = {car.tag: car.room_wh for car in day.cars}
    budget = {} if budget_s is None else {"budget_s": budget_s}
    for t in range(day.begin, day.end, step_s):
        window = day.base[t - day.begin:min(day.end, t + step_s) - day.begin]
        building = tuple(max(second[p] for second in window) for p in range(3))
        capacity = {(c.id, p): c.limit - topology.margin - (building[p] if c.id == day.metered else 0.0)
                    for c in topology.circuits for p in range(3)}
        cars, present = [], {}
        for car in day.cars:
            if car.start <= t < car.leave and room[car.tag] > 1e-6:
                evse = topology.evses[car.evse]
                used = evse.phase_map[:min(car.phases, len(evse.phase_map))]
                cars.append(PlanCar(evse.key, tuple((c, p) for c in topology.paths[evse.circuit] for p in used),
                                    len(used), evse.min_current, min(car.max_current, evse.max_current),
                                    room[car.tag], float(car.leave), car.priority))
                present[evse.key] = car
        if not cars:
            continue
        later = building_forecast(day, t, PLAN_SLOT_S) if forecast else ()
        targets = plan(PlanInputs(tuple(cars), capacity, float(t), policy, later=later, **budget)).targets
        for key, car in present.items():
            phases = min(car.phases, len(topology.evse_by_key[key].phase_map))
            seconds = min(step_s, car.leave - t, day.end - t)
            room[car.tag] = max(0.0, room[car.tag] - targets[key] * phases * VOLTAGE * seconds / 3600.0)
    return sum(car.room_wh - room[car.tag] for car in day.cars) / 1000.0


PLAN_SLOT_S = 300


def building_forecast(day: Day, t: int, slot_s: int = PLAN_SLOT_S, hours: float = 12.0
                      ) -> tuple[dict[tuple[str, int], float], ...]:
    """Capacity per later slot from the building's typical day (its hourly profile, the
    short peaks left out): what the edge would learn from the same hours of past days."""
    topology = day.topology
    share = day.base_share
    out = []
    for k in range(1, int(hours * 3600 / slot_s) + 1):
        hour = ((t + k * slot_s) % 86400) / 3600.0
        typical = [share * _profile(hour) * PHASE_SHARE[p] for p in range(3)]
        out.append({(c.id, p): c.limit - topology.margin - (typical[p] if c.id == day.metered else 0.0)
                    for c in topology.circuits for p in range(3)})
    return tuple(out)
