"""The `scheduled` plan as a linear program over the horizon (HiGHS, through scipy). Pure.

One variable per car and slot: its current (A per phase). Every circuit phase on
a car's path, in every slot, holds at most what it has free; a car takes at most
its maximum while it is there and at most the energy it still wants. The
objective is the energy delivered, so on a phase that binds, a 3-phase car's
ampere is worth three times a 1-phase car's (the greedy cannot see that). Two
small weights break ties the way an online planner should, since it knows
neither the building's load to come nor the cars that will arrive: energy now
is worth a little more than energy later (the plan stays work-conserving and
keeps room for the unknown); where not every car can have what it wants, a car
that leaves sooner is worth a little more; and a car's energy loses a little
worth over its own window, so of two cars that could take the same amps now,
the one that leaves sooner does (earliest deadline first, where energy is equal). A prioritised user group's car is worth ten times any other
(it keeps full speed, as with every other strategy).

Slots grow with distance (the near future is planned finely, the far future
coarsely: what happens in six hours will be planned again fifty times before
it comes), so a plan for 100 cars over 12 h is about 2,200 variables.

A car that has not shown what it takes yet (PlanCar.max_known) may have its EVSE's
maximum in slot 0 (taking it shows what it takes), but later slots count on no more
than UNKNOWN_MAX (16 A): planned at 32 A later, a 16 A car is put off as one that can
finish in time, and cannot.

Only slot 0 is used now, and there the 6 A minimum applies (IEC 61851: below it
a car does not charge): a car the LP gives less than its minimum gets its
minimum if there is still room after the cars above it, in the LP's order of
preference, else it waits; the cars that wait take turns as the plan moves on.

The solver is bounded in time; if it fails, runs out of time or is missing, the
caller falls back to the greedy planner (edge.dlm.planner). A plan never stops
the safety loop: the allocator does not wait for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edge.dlm.model import EvseKey, Resource

# numpy and scipy's linprog and csr_matrix once imported (load()).
_lp: tuple[ModuleType, Any, Any] | None = None


def load() -> bool:
    """Import the solver: numpy and scipy cost about 40 MB of memory and a second or more on a Pi, so
    only a site whose strategy is `scheduled` pays them, and edge/app.py has this run in a thread at
    start-up rather than on the event loop at the first plan. False: scipy is missing or broken (the
    planner is then the greedy one)."""
    global _lp
    if _lp is None:
        try:
            import numpy
            from scipy.optimize import linprog
            from scipy.sparse import csr_matrix
        except ImportError:    # pragma: no cover - scipy is a runtime dependency; a broken install falls back
            return False
        _lp = (numpy, linprog, csr_matrix)
    return True


# Wall-clock seconds the solver may take before the greedy plan is used instead. A plan
# comes once a minute; 100 cars take about 30 ms here (docs/performance.md).
BUDGET_S = 0.5
# Slot lengths, in units of the plan's slot (5 min): six of one (the first half hour),
# six of three (to 2 h), then of twelve (an hour) to the horizon.
GROWTH = ((6, 1), (6, 3), (math.inf, 12))
# Tie-breaks, small against 1 (the energy itself); SOONER < EARLY_LEAVER, so the order in
# time never takes energy from the sooner leaver.
EARLY_LEAVER = 0.02     # a car leaving now is worth this much more than one leaving at the horizon
DISCOUNT = 0.01         # energy at the horizon is worth this much less than now
SOONER = 0.005          # energy at a car's departure is worth this much less than now
PRIORITY = 10.0
# A per phase a car whose maximum is not known (PlanCar.max_known) is counted on after slot 0:
# most cars take 16 A (11 kW on three phases, 3.7 kW on one), some 32 A. Planned at its EVSE's
# 32 A it would be put off as one that can finish later; a 16 A car then cannot. Now it may take
# its EVSE's maximum, which shows what it takes (the load manager's demand) by the next plan.
UNKNOWN_MAX = 16.0
EPS = 1e-9
VOLTAGE = 230.0


@dataclass(frozen=True)
class PlanCar:
    key: EvseKey
    resources: tuple[Resource, ...]     # the circuit phases it draws on (every circuit on its path)
    phases: int                         # how many phases it draws on
    min_current: float = 6.0
    max_current: float = 32.0           # A per phase it can take (the EVSE's and the car's)
    energy_wh: float = math.inf         # still wanted before it leaves; inf: unknown
    departure: float = math.inf         # monotonic s; inf: unknown
    priority: bool = False              # a prioritised user group: served before every other car
    # False: the car has not shown what it takes (it was never offered more than it drew), so
    # `max_current` is only its EVSE's. It may take that now, but the plan does not count on more
    # than UNKNOWN_MAX later: half the cars take 16 A, and a car planned to finish at 32 A that
    # takes 16 A is put off until it can no longer finish (optimiser.solve, _scheduled).
    max_known: bool = True


@dataclass(frozen=True)
class PlanInputs:
    cars: tuple[PlanCar, ...]
    capacity: dict[Resource, float]     # A per circuit phase free for these cars now (after base load, reserve, margin)
    now: float
    policy: str = "scheduled"
    slot_s: float = 300.0
    horizon_s: float = 12 * 3600.0      # a car with no departure is planned as if it left at the horizon
    voltage: float = VOLTAGE
    # What each later slot is expected to have (a forecast of the building's load, e.g. the same
    # hour on past days), slot 1 first. Past its end, and for a phase it does not name: `capacity`.
    later: tuple[dict[Resource, float], ...] = ()
    # Wall-clock seconds the LP may take; 0: the greedy plan (`scheduled` only).
    budget_s: float = BUDGET_S


def later_max(car: PlanCar) -> float:
    """A per phase the plan counts on the car taking after slot 0: its maximum when known, else
    no more than UNKNOWN_MAX."""
    if car.max_known:
        return car.max_current
    return min(car.max_current, max(car.min_current, UNKNOWN_MAX))


class SolverFailed(RuntimeError):
    """The LP did not give a plan (missing solver, time limit, numerical trouble): use the greedy."""


@dataclass(frozen=True)
class Solved:
    slot0: dict[EvseKey, float]                 # A per phase now, before the minimum is applied
    schedule: dict[EvseKey, tuple[float, ...]]  # A per phase, mean over each slot
    slots: tuple[float, ...]                      # slot lengths, s


def slot_lengths(slot_s: float, span_s: float) -> tuple[float, ...]:
    """Slots that cover `span_s`: short first, longer further out."""
    out: list[float] = []
    covered = 0.0
    for count, factor in GROWTH:
        n = 0
        while n < count and covered < span_s - EPS:
            out.append(slot_s * factor)
            covered += slot_s * factor
            n += 1
    return tuple(out)


def solve(cars: list[PlanCar], left: dict, inputs: PlanInputs, end: float) -> Solved:
    """The LP's plan for `cars` (each with a path and a minimum it can reach) until `end`."""
    if not load():
        raise SolverFailed("scipy is not installed")
    assert _lp is not None
    np, linprog, csr_matrix = _lp
    now, volts = inputs.now, inputs.voltage
    lengths = slot_lengths(inputs.slot_s, end - now)
    starts = [now + sum(lengths[:k]) for k in range(len(lengths))]
    span = max(EPS, end - now)
    # Columns: (car, slot) where the car is there for part of the slot.
    col_car, col_slot, upper, gain, energy = [], [], [], [], []
    owned: list[list[int]] = []
    for i, car in enumerate(cars):
        owned.append([])
        leave = min(car.departure, end)
        per_amp = car.phases * volts / 3600.0
        top_later = later_max(car)
        window = max(EPS, leave - now)
        for k, (start, length) in enumerate(zip(starts, lengths)):
            there = min(length, leave - start)
            if there <= EPS:
                break
            # Slot 0 is what the car gets now: its current while it is there, within the limits
            # as it is. Later slots are means over the slot (a relaxation; they are planned again).
            top = car.max_current if k == 0 else top_later * there / length
            wh_per_amp = per_amp * (there if k == 0 else length)
            owned[i].append(len(col_car))
            col_car.append(i)
            col_slot.append(k)
            upper.append(top)
            energy.append(wh_per_amp)
            mid = (start + min(start + length, leave)) / 2.0 - now
            # Energy for a car that leaves sooner is worth a little more (who is served when not all
            # can be); energy later a little less, over the horizon and, less again, over the car's
            # own window (of two cars that could take the same amps now, the sooner leaver does).
            worth = (1.0 + EARLY_LEAVER * (1.0 - window / span) - DISCOUNT * mid / span
                     - SOONER * min(1.0, mid / window))
            gain.append(wh_per_amp * worth * (PRIORITY if car.priority else 1.0))
    if not col_car:
        return Solved({}, {}, lengths)
    rows, cols, rhs = [], [], []
    index: dict[tuple, int] = {}
    for j, (i, k) in enumerate(zip(col_car, col_slot)):
        for r in cars[i].resources:
            row = index.get((r, k))
            if row is None:
                row = index[(r, k)] = len(rhs)
                rhs.append(max(0.0, _capacity(inputs, left, r, starts[k] - now, lengths[k])))
            rows.append(row)
            cols.append(j)
    values = [1.0] * len(rows)
    for i, car in enumerate(cars):
        if math.isfinite(car.energy_wh):
            row = len(rhs)
            rhs.append(max(0.0, car.energy_wh))
            for j in owned[i]:
                rows.append(row)
                cols.append(j)
                values.append(energy[j])
    matrix = csr_matrix((values, (rows, cols)), shape=(len(rhs), len(col_car)))
    result = linprog(-np.asarray(gain), A_ub=matrix, b_ub=np.asarray(rhs),
                     bounds=np.column_stack([np.zeros(len(upper)), np.asarray(upper)]), method="highs",
                     options={"time_limit": inputs.budget_s, "presolve": True})
    if result.status != 0 or result.x is None:
        raise SolverFailed(f"HiGHS: {result.message}")
    x = np.clip(result.x, 0.0, np.asarray(upper))
    schedule: dict = {car.key: [0.0] * len(lengths) for car in cars}
    for j, (i, k) in enumerate(zip(col_car, col_slot)):
        schedule[cars[i].key][k] = float(x[j])
    return Solved({c.key: schedule[c.key][0] for c in cars}, {k: tuple(v) for k, v in schedule.items()}, lengths)


def _capacity(inputs: PlanInputs, left: dict, resource, offset: float, length: float) -> float:
    """Free amps on a circuit phase over a slot: now, or the forecast's least over the slot."""
    if offset <= EPS or not inputs.later:
        return left.get(resource, 0.0)
    first = int(offset // inputs.slot_s)
    last = int(math.ceil((offset + length) / inputs.slot_s - EPS))
    seen = [inputs.later[k - 1].get(resource, left.get(resource, 0.0))
            for k in range(max(1, first), last) if k - 1 < len(inputs.later)]
    return min(seen) if seen else left.get(resource, 0.0)
