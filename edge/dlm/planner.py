"""The departure-aware planner behind the `scheduled` strategy. Pure; time is passed in.

When sessions carry a departure time and an energy need, the order in which
cars are served matters: a car that leaves at noon must get its energy before
one that stays until six. The planner looks ahead over the horizon in slots
(5 minutes by default) and answers, per car, the current it should have *now*
(its target). The 1 s allocator stays the safety loop: it takes these targets
as each car's desired current, and admission, limits and minimums stay its own.

`scheduled` is a linear program over the horizon (edge.dlm.optimiser: per circuit
phase, energy-weighted, early leavers and energy now preferred), rounded to the
6 A minimum in the slot that is used now. If the solver fails, is missing or takes
longer than `PlanInputs.budget_s`, the plan is the greedy below, and `Plan.solver`
says so. Both keep every circuit phase on each car's path within what it has, and
plan a car at 0 or at least its minimum. Their cost and their distance to an LP
bound of the whole day are measured by `python -m bench dlm` (docs/performance.md).

The greedy `scheduled`, per plan:

1. *The plan*: cars in order of departure (earliest first) are spread over
   their window at one level (water-filling over time), each slot within what
   every circuit phase on its path still has. A car that cannot finish gets
   its maximum wherever there is room, the first slot included, whatever its
   departure; a car with time to spare (its level would be below its minimum)
   gets its minimum in its last slots, so the first slot goes to others.
2. *The rest of the first slot* goes to the cars in order of departure, each up
   to its maximum (work-conserving: energy now is never worth less than later,
   and a car may leave early or its battery taper).

The baselines of the benchmark use the same slot-0 fill with another order and
no look-ahead: `edf` (earliest departure first), `llf` (least laxity first: the
time to departure minus the time its need takes at its maximum) and
`round_robin` (equal shares, the cars that do not fit their minimum taking
turns by plan period, each stopped at its need) and `round_robin_blind` (the
same, told neither departures nor needs: like `fair`, every car wants its
maximum while it is there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from edge.dlm import optimiser
# PlanCar and PlanInputs, what a plan is made of, live beside the solver that reads them.
from edge.dlm.optimiser import PlanCar, PlanInputs
from edge.dlm.model import Allocation, ConnectorState, EvseKey, Resource, Topology

POLICIES = ("scheduled", "edf", "llf", "round_robin", "round_robin_blind")
EPS = 1e-9


@dataclass(frozen=True)
class Plan:
    targets: dict[EvseKey, float]       # A per phase each car should have now; in serving order
    schedule: dict[EvseKey, tuple[float, ...]] = field(default_factory=dict)  # scheduled: per slot
    slot_s: float = 0.0                 # the greedy's slot length (its schedule's slots are all this long)
    slots: tuple[float, ...] = ()       # the LP's slot lengths, s (they grow with distance)
    solver: str = ""                    # `scheduled`: "lp", or "greedy: why the LP was not used"
    # What the allocator is handed (`scheduled`), in serving order: each car's target, except a car
    # the plan gives all the room there is now: it asks for what it wants (see `handed`).
    asks: dict[EvseKey, float] | None = None

    def handed(self) -> dict[EvseKey, float]:
        """The allocator's targets. The plan is made against the free capacity at one instant
        (the estimator's conservative view, which a car's ramp or a stale sample can lower
        for a second or two) and held for the plan period. A car planned at all the room
        there was asks for what it wants: when there is more room than at the plan's instant
        the allocator gives it the extra (the plan's own rule: the rest of slot 0 goes to
        cars in order of departure), where a target at the instant's room would leave the
        extra to be shared as `fair` does, against the plan. When there is less room it
        is this car that gives way, after the others have their targets."""
        return self.targets if self.asks is None else self.asks


def _rate_wh_per_s(car: PlanCar, amps: float, voltage: float) -> float:
    return amps * car.phases * voltage / 3600.0


def _room(left: dict[Resource, float], car: PlanCar) -> float:
    return min((left.get(r, 0.0) for r in car.resources), default=0.0)


def _take(left: dict[Resource, float], car: PlanCar, amps: float) -> None:
    for r in car.resources:
        left[r] = left.get(r, 0.0) - amps


def _grant(wanted: float, room: float, car: PlanCar) -> float:
    """Amps a car gets in a slot: what it wants, within the room; 0 or at least its
    minimum. A car that wants less than its minimum (nearly done) gets the minimum
    if there is room: below it, it could not charge at all."""
    amps = min(wanted, room, car.max_current)
    if amps >= car.min_current - EPS:
        return amps
    if wanted > EPS and room >= car.min_current - EPS and car.max_current >= car.min_current - EPS:
        return car.min_current
    return 0.0


def _wanted(car: PlanCar, now: float, slot: float, voltage: float) -> float:
    """What a car takes now: its maximum, or less if that finishes its need within the slot."""
    window = min(slot, max(0.0, car.departure - now))
    if math.isinf(car.energy_wh) or window <= EPS:
        return car.max_current
    return min(car.max_current, car.energy_wh / (_rate_wh_per_s(car, 1.0, voltage) * window))


def _whole(amps: float) -> float:
    # Down to whole amps: never above what fits, and a change of target is at least 1 A, so an
    # increase clears the actuation's hysteresis step instead of being held back below it.
    return float(math.floor(amps + 1e-6))


def _fill_now(cars: list[PlanCar], left: dict[Resource, float], now: float, slot: float, voltage: float,
              floor: dict[EvseKey, float], whole: bool = False) -> dict[EvseKey, float]:
    """Slot 0: each car in order raised from `floor` up to its maximum (and what its
    need takes in one slot), within every circuit phase on its path; `whole`: in whole amps."""
    out = dict(floor)
    for car in cars:
        have = out.get(car.key, 0.0)
        wanted = _wanted(car, now, slot, voltage)
        if have > 0:
            extra = max(0.0, min(wanted - have, _room(left, car)))
            extra = _whole(extra) if whole else extra
        else:
            extra = _grant(wanted, _room(left, car), car)
            if whole and extra > 0:
                extra = max(car.min_current, _whole(extra))
        if extra > EPS:
            _take(left, car, extra)
            out[car.key] = have + extra
    return out


def _by_departure(car: PlanCar) -> tuple:
    return (not car.priority, car.departure, car.key)


def _laxity(car: PlanCar, now: float, voltage: float) -> float:
    if math.isinf(car.departure):
        return math.inf
    full_rate = _rate_wh_per_s(car, car.max_current, voltage)
    takes = car.energy_wh / full_rate if full_rate > 0 else math.inf
    return (car.departure - now) - takes


def plan(inputs: PlanInputs) -> Plan:
    if inputs.policy not in POLICIES:
        raise ValueError(f"unknown policy {inputs.policy!r}: one of {', '.join(POLICIES)}")
    now, volts = inputs.now, inputs.voltage
    # A car that wants nothing, has left, or cannot reach its minimum is planned at 0.
    cars = [c for c in inputs.cars if c.energy_wh > EPS and c.departure > now + EPS
            and c.max_current >= c.min_current - EPS and c.max_current > EPS]
    idle = {c.key: 0.0 for c in inputs.cars if c not in cars}
    left = {r: max(0.0, a) for r, a in inputs.capacity.items()}
    if inputs.policy == "edf":
        order = sorted(cars, key=_by_departure)
        return Plan(_ordered(_fill_now(order, left, now, inputs.slot_s, volts, {}), order, idle))
    if inputs.policy == "llf":
        order = sorted(cars, key=lambda c: (not c.priority, _laxity(c, now, volts), c.key))
        return Plan(_ordered(_fill_now(order, left, now, inputs.slot_s, volts, {}), order, idle))
    if inputs.policy == "round_robin":
        return _round_robin(cars, left, inputs, idle)
    if inputs.policy == "round_robin_blind":
        # Like `fair`, it knows neither departures nor needs: every car wants its maximum.
        blind = [replace(c, energy_wh=math.inf, departure=math.inf) for c in inputs.cars
                 if c.max_current >= c.min_current - EPS and c.max_current > EPS]
        unable = {c.key: 0.0 for c in inputs.cars} | {c.key: None for c in blind}
        return _round_robin(blind, left, inputs, {k: a for k, a in unable.items() if a is not None})
    if inputs.budget_s <= 0:
        return replace(_scheduled(cars, left, inputs, idle), solver="greedy: no time for the LP")
    try:
        return _optimised(cars, left, inputs, idle)
    except optimiser.SolverFailed as failed:
        return replace(_scheduled(cars, left, inputs, idle), solver=f"greedy: {failed}")


def _down(amps: float) -> float:
    # To a thousandth of an amp, rounded down: never above what was computed to fit.
    return math.floor(amps * 1000 + 1e-6) / 1000


def _ordered(amps: dict[EvseKey, float], order: list[PlanCar], idle: dict[EvseKey, float]) -> dict[EvseKey, float]:
    out = {c.key: _down(amps.get(c.key, 0.0)) for c in order}
    out.update(idle)
    return out


def _round_robin(cars: list[PlanCar], left: dict[Resource, float], inputs: PlanInputs,
                 idle: dict[EvseKey, float]) -> Plan:
    """Equal shares. Cars are admitted at their minimum in an order that turns by
    one place every plan period, so those left out take turns; the admitted
    ones then rise together (water-filling) up to their maximum."""
    if not cars:
        return Plan(dict(idle))
    ranked = sorted(cars, key=lambda c: (not c.priority, c.key))
    turn = int(inputs.now // inputs.slot_s) % len(ranked)
    ranked = [c for c in ranked if c.priority] + [c for c in ranked[turn:] + ranked[:turn] if not c.priority]
    level: dict[EvseKey, float] = {}
    # Prioritised cars first, filled before the others are admitted (they keep full speed).
    for group in ([c for c in ranked if c.priority], [c for c in ranked if not c.priority]):
        admitted: list[PlanCar] = []
        for car in group:
            if _room(left, car) >= car.min_current - EPS:
                _take(left, car, car.min_current)
                admitted.append(car)
                level[car.key] = car.min_current
        rising = [c for c in admitted if c.max_current > c.min_current + EPS]
        while rising:
            users: dict[Resource, int] = {}
            for car in rising:
                for r in car.resources:
                    users[r] = users.get(r, 0) + 1
            step = max(0.0, min([left[r] / n for r, n in users.items()] +
                                [c.max_current - level[c.key] for c in rising]))
            for car in rising:
                level[car.key] += step
                _take(left, car, step)
            rising = [c for c in rising if level[c.key] < c.max_current - EPS and _room(left, c) > EPS]
    return Plan(_ordered(level, ranked, idle))


def _forecast(inputs: PlanInputs, now: dict[Resource, float], k: int) -> dict[Resource, float]:
    if k - 1 >= len(inputs.later):
        return dict(now)
    expected = inputs.later[k - 1]
    return {r: max(0.0, expected.get(r, a)) for r, a in now.items()}


def _spread(car: PlanCar, need: float, rooms: list[float], seconds: list[float], volts: float) -> list[float]:
    """A car's need over its slots at one level (water-filling over time, each slot within
    its room), so it has slack both ways when the building's load or the arrivals change.
    Slots with less room than its minimum are no use to it. A car whose level would be
    below its minimum has time: it gets its minimum in its last usable slots."""
    usable = [r if r >= car.min_current - EPS else 0.0 for r in rooms]
    per_amp = [_rate_wh_per_s(car, 1.0, volts) * s for s in seconds]
    out = [0.0] * len(rooms)
    if need <= EPS or not any(usable):
        return out
    # The level x with sum(min(x, room) * per_amp) = need: walk the rooms in ascending order.
    order = sorted(range(len(usable)), key=lambda k: usable[k])
    below, above = 0.0, sum(per_amp[k] for k in order if usable[k] > 0)
    level = car.max_current
    for k in order:
        if usable[k] <= 0:
            continue
        if below + usable[k] * above >= need:
            level = (need - below) / above
            break
        below += usable[k] * per_amp[k]
        above -= per_amp[k]
    # A prioritised user group keeps full speed (seed 002), as with every other strategy.
    level = car.max_current if car.priority else min(level, car.max_current)
    if level >= car.min_current - EPS:
        return [min(level, r) if r > 0 else 0.0 for r in usable]
    for k in range(len(usable) - 1, -1, -1):
        if need <= EPS:
            break
        if usable[k] > 0:
            out[k] = car.min_current
            need -= car.min_current * per_amp[k]
    return out


def _later(car: PlanCar) -> PlanCar:
    """The car as the plan counts on it after slot 0 (PlanCar.max_known)."""
    top = optimiser.later_max(car)
    return car if top >= car.max_current else replace(car, max_current=top)


def _now_instead_of_later(car: PlanCar, row: list[float], amps: float, first_s: float, dt: float,
                          volts: float) -> None:
    """A car given more now than it had to have needs less later: take that energy off its
    last slots (the plan stays within every limit, and shows what is still to come)."""
    extra = _rate_wh_per_s(car, amps - row[0], volts) * first_s
    row[0] = amps
    for k in range(len(row) - 1, 0, -1):
        if extra <= EPS:
            break
        energy = _rate_wh_per_s(car, row[k], volts) * dt
        if energy <= extra + EPS:
            row[k], extra = 0.0, extra - energy
        else:
            row[k] = max(car.min_current, row[k] - extra / _rate_wh_per_s(car, 1.0, volts) / dt)
            extra = 0.0


def _scheduled(cars: list[PlanCar], left: dict[Resource, float], inputs: PlanInputs,
               idle: dict[EvseKey, float]) -> Plan:
    now, dt, volts = inputs.now, inputs.slot_s, inputs.voltage
    end = min(max((c.departure for c in cars), default=now), now + inputs.horizon_s)
    slots = max(1, math.ceil((end - now) / dt - EPS)) if cars else 0
    free = [dict(left)] + [_forecast(inputs, left, k) for k in range(1, slots)]
    order = sorted(cars, key=_by_departure)
    schedule: dict[EvseKey, list[float]] = {c.key: [0.0] * slots for c in order}
    # 1. The plan: each car, earliest departure first, as evenly as it can over its window.
    for car in order:
        leave = min(car.departure, now + inputs.horizon_s)
        need = car.energy_wh if math.isfinite(car.energy_wh) else 0.0
        last = min(slots, math.ceil((leave - now) / dt - EPS))
        seconds = [min(dt, leave - (now + k * dt)) for k in range(last)]
        rooms = [_room(free[k], car) for k in range(last)]
        for k, amps in enumerate(_spread(_later(car), need, rooms, seconds, volts)):
            if amps > 0:
                _take(free[k], car, amps)
                schedule[car.key][k] = amps
    # 2. The rest of the first slot, earliest departure first, up to each car's maximum; slot 0
    # in whole amps (at least the minimum).
    floor = {c.key: max(c.min_current, _whole(schedule[c.key][0])) for c in order
             if schedule[c.key] and schedule[c.key][0] > 0}
    room = dict(left)
    for car in order:
        _take(room, car, floor.get(car.key, 0.0))
    now_slot = _fill_now(order, room, now, dt, volts, floor, whole=True)
    # Serving order: the must-run cars first (they bind the plan), then by departure.
    serving = sorted(order, key=lambda c: (not c.priority, not floor.get(c.key), c.departure, c.key))
    for car in order:
        row = schedule[car.key]
        if row:
            _now_instead_of_later(car, row, now_slot.get(car.key, 0.0), min(dt, car.departure - now), dt, volts)
    targets = _ordered(now_slot, serving, idle)
    return Plan(targets, {k: tuple(_down(a) for a in v) for k, v in schedule.items()}, dt,
                asks=_asks(serving, targets, room, inputs))


def _optimised(cars: list[PlanCar], left: dict[Resource, float], inputs: PlanInputs,
               idle: dict[EvseKey, float]) -> Plan:
    """The LP's plan, with slot 0 rounded to the minimum and to whole amps: the cars it gives
    at least their minimum keep what it gives (down to whole amps); then, in its order of
    preference (most amps first, then earliest departure), each car it gives less gets its
    minimum where there is still room, or waits; what is left of slot 0 goes to the running
    cars in whole amps as the greedy's rest does."""
    now = inputs.now
    reachable = [c for c in cars if c.resources]
    end = min(max((c.departure for c in reachable), default=now), now + inputs.horizon_s)
    solved = optimiser.solve(reachable, left, inputs, end)
    room = dict(left)
    floor: dict[EvseKey, float] = {}
    above = [c for c in reachable if solved.slot0.get(c.key, 0.0) >= c.min_current - 1e-6]
    for car in above:
        amps = min(car.max_current, max(car.min_current, _whole(solved.slot0[car.key])), _room(room, car))
        if amps >= car.min_current - EPS:
            floor[car.key] = amps
            _take(room, car, amps)
    below = sorted((c for c in reachable if c.key not in floor and solved.slot0.get(c.key, 0.0) > 1e-6),
                   key=lambda c: (not c.priority, -solved.slot0[c.key], c.departure, c.key))
    for car in below:
        if _room(room, car) >= car.min_current - EPS:
            floor[car.key] = car.min_current
            _take(room, car, car.min_current)
    order = sorted(reachable, key=_by_departure)
    now_slot = _fill_now([c for c in order if c.key in floor], room, now, inputs.slot_s, inputs.voltage, floor,
                         whole=True)
    serving = sorted(cars, key=lambda c: (not c.priority, not now_slot.get(c.key), c.departure, c.key))
    targets = _ordered(now_slot, serving, idle)
    return Plan(targets, {k: tuple(_down(a) for a in v) for k, v in solved.schedule.items()},
                inputs.slot_s, solved.slots, "lp", _asks(serving, targets, room, inputs))


def _asks(serving: list[PlanCar], targets: dict[EvseKey, float], room: dict[Resource, float],
          inputs: PlanInputs) -> dict[EvseKey, float]:
    """Plan.handed: a running car that wants more than its target while a circuit phase on its
    path has less than an ampere left asks for what it wants, and is served after the cars
    whose targets are above their minimum (their targets come first, as in the plan)."""
    asks, rest = {}, set()
    for car in serving:
        amps = targets.get(car.key, 0.0)
        wanted = _wanted(car, inputs.now, inputs.slot_s, inputs.voltage)
        if amps > 0 and wanted > amps + 1.0 - EPS and _room(room, car) < 1.0:
            asks[car.key] = _whole(wanted)
            rest.add(car.key)
        else:
            asks[car.key] = amps
    by_min = {c.key: c.min_current for c in serving}
    order = sorted(asks, key=lambda k: (not targets.get(k, 0.0),
                                        k in rest or targets.get(k, 0.0) <= by_min.get(k, 0.0) + EPS))
    return {k: asks[k] for k in order} | {k: a for k, a in targets.items() if k not in asks}


# --- from what the load manager knows ------------------------------------------------------------

@dataclass(frozen=True)
class Need:
    """What a session's driver asked for (or the group default, or the token's history)."""

    departure: float                    # monotonic s
    energy_wh: float                    # still wanted: declared minus delivered so far


def capacity_of(allocation: Allocation, margin: float) -> dict[Resource, float]:
    """Per circuit phase, what managed cars may use: the limit less margin, unmanaged load
    and reserve, as the allocator computed them on its last run."""
    return {(c, p): load.limit - margin - load.unmanaged - load.reserved
            for c, circuit in allocation.circuits.items() for p, load in enumerate(circuit.phases)}


def plan_cars(topology: Topology, states: tuple[ConnectorState, ...], needs: dict[EvseKey, Need],
              drew: dict[EvseKey, float] | None = None, said: dict[EvseKey, float] | None = None,
              took: dict[EvseKey, float] | None = None) -> tuple[PlanCar, ...]:
    """A PlanCar for every controllable session. A car without a need is planned as one
    that stays to the horizon and takes what it gets; a car that takes nothing now
    (full, or on its own timer) is planned at its minimum, so it can resume. A car whose
    demand is not known (it has not drawn clearly less than a limit yet) is planned at its
    EVSE's maximum now, and at no more than UNKNOWN_MAX later (PlanCar.max_known), unless
    it has shown it takes its EVSE's maximum: it draws (`state.measured`, the least it can be
    drawing) or drew in this session (`drew`, A per phase) within SHOWN_SLACK of it. A car that
    said its maximum (`said`, A per phase: ISO 15118's evMaxCurrent, needs.FromCar.max_current)
    is planned at no more than that, as known. So is a car found taking less than its limit in
    this session (`took`, A per phase: what it drew then, tracking.Track.took), now and later:
    the load manager forgets its demand once it is limited below it (it then draws its limit).
    It is planned at what it drew, not at its demand (that plus tracking.HELD_OVER, the
    allocator's hold), or each 16 A car would hold an ampere it does not draw on the phase that
    binds. A car that took less for a while (a cold battery) is then planned at that for the
    rest of its session; only room left after the plan lets it show more."""
    out = []
    for state in states:
        evse = topology.evse_by_key.get(state.key)
        if evse is None or not state.session or not state.controllable:
            continue
        used = evse.phase_map[:max(1, min(state.phases_in_use or len(evse.phase_map), len(evse.phase_map)))]
        need = needs.get(state.key)
        top = evse.max_current if state.demand is None else max(evse.min_current, min(evse.max_current, state.demand))
        told = (said or {}).get(state.key)
        if told is not None:
            top = max(evse.min_current, min(top, told))
        found = (took or {}).get(state.key, 0.0)
        if found > 0 and state.demand != 0:     # 0: it takes nothing now, planned at its minimum
            top = max(evse.min_current, min(top, found))
        shown = max([*state.measured[:len(used)], (drew or {}).get(state.key, 0.0)])
        known = (state.demand is not None or told is not None or found > 0
                 or shown >= evse.max_current - SHOWN_SLACK)
        out.append(PlanCar(state.key, tuple((c, p) for c in topology.paths[evse.circuit] for p in used), len(used),
                           evse.min_current, top, need.energy_wh if need else math.inf,
                           need.departure if need else math.inf, state.priority, known))
    return tuple(out)


# A car drawing within this much (A) of its EVSE's maximum has shown it takes that maximum: the
# complement of tracking.DEMAND_SLACK (a car drawing that much under its limit wants no more). 1.5 A
# gave 691.3 kWh on the day, 2.0 to 3.0 A 692.1 (a car's least estimate sits between 30 and 30.5 A). Only
# then is it counted on for more than UNKNOWN_MAX later: counted on for the most it drew (20 A on a
# 32 A EVSE: 20 A later) the day gave 685.0 kWh, against 691.3 (docs/performance.md).
SHOWN_SLACK = 2.0


def known_maxima(cars: tuple[PlanCar, ...]) -> frozenset[EvseKey]:
    """The cars whose maximum the plan knows (PlanCar.max_known). Re-plan when this changes, not
    only every PLAN_PERIOD_S: a car found to take 16 A was planned at its EVSE's 32 A now, and one
    found to take 32 A at 16 A later, until the next plan."""
    return frozenset(c.key for c in cars if c.max_known)


# Re-plan at least this often (s), and whenever a session starts or stops, a need changes or a car's
# maximum becomes known (known_maxima): once per slot (PlanInputs.slot_s). Re-planned every minute, slot 0 was decided again against the
# building's load of that instant, and cars were moved between their maximum, a partial rate and
# a pause for little: on the working day 60 s gave 685.1 kWh with 1989 decreases, 300 s 689.0 kWh
# with 744, 600 s 686.5 (docs/performance.md). The allocator stays the safety loop every second.
PLAN_PERIOD_S = 300.0


def plan_now(topology: Topology, states: tuple[ConnectorState, ...], needs: dict[EvseKey, Need],
             allocation: Allocation, now: float, policy: str = "scheduled", *,
             drew: dict[EvseKey, float] | None = None, said: dict[EvseKey, float] | None = None,
             took: dict[EvseKey, float] | None = None) -> Plan:
    """The plan now (the live load manager and the bench alike): every controllable session,
    with what it still needs, against what the allocator computed as free on each circuit
    phase (held over the horizon)."""
    cars = plan_cars(topology, states, needs, drew, said, took)
    return plan(PlanInputs(cars, capacity_of(allocation, topology.margin), now, policy))


def targets_now(topology: Topology, states: tuple[ConnectorState, ...], needs: dict[EvseKey, Need],
                allocation: Allocation, now: float, policy: str = "scheduled", *,
                drew: dict[EvseKey, float] | None = None, said: dict[EvseKey, float] | None = None,
                took: dict[EvseKey, float] | None = None) -> dict[EvseKey, float]:
    """The allocator's targets now (see plan_now and Plan.handed)."""
    return plan_now(topology, states, needs, allocation, now, policy, drew=drew, said=said, took=took).handed()
