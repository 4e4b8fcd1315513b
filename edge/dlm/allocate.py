"""The allocator: who gets how many amps, and why. Pure; time is passed in.

The site is a tree of circuits, each with a per-phase limit. Every (circuit,
phase) pair is a *resource*; a car charging on an EVSE uses every resource on
the path from its circuit to the grid connection, on each site phase it draws
from. The allocator works in four steps:

1. Capacity. For each resource: limit - margin - unmanaged load - reserved.
   Unmanaged load is what the circuit's meter shows minus what the managed
   chargers under it measure; a lost meter counts as its failsafe load (fail
   closed). Reserved is held for chargers we cannot steer (offline, rejecting
   profiles: their max) and for cars about to start (their safe share).
2. Admission. Sessions are taken in order (prioritised first; running ones
   before new ones so a newcomer never pushes a running car below its minimum;
   a car paused longer than `rotate_after` swaps with one that has run that
   long) and admitted while every resource they use still has room for their
   minimum current (`fair`: a car waiting to start, while every car charging
   there keeps START_MARGIN over its minimum). The rest are paused.
3. Distribution of what is left, by strategy: `fair` raises every admitted
   car together (water-filling) up to what it takes, prioritised cars first;
   `fcfs` fills cars one by one in arrival order; `fixed` water-fills over
   every EVSE, car or not, so each has a static share that is not lent out;
   `scheduled` fills cars in the planner's order up to its targets
   (edge/dlm/planner.py), then shares the rest as `fair` does.
4. Decisions, rounded down to 0.1 A, each with the rule or resource that
   binds it, so "why is this car limited" has an answer.
"""

from __future__ import annotations

import heapq
import math
from typing import Iterable

from edge.dlm.model import (Allocation, CircuitLoad, ConnectorState, Decision, Evse, EvseKey, Inputs,
                            PhaseLoad, Resource, Topology)
from edge.dlm.phases import NAMES, to_site

EPS = 1e-9
# A car the allocator paused resumes only with this much to spare over its minimum on every phase
# it uses (A), unless it is due for its turn. Near the minimum the estimate drifts (a car's least
# tapers ~0.5 A over a sample interval) and the building flickers: without a margin a car resumed
# with a few tenths to spare is paused again seconds later, and every pause and resume holds the
# other cars' changes back for the follow time, which costs more than the margin.
RESUME_MARGIN = 1.0
# `fair`: a car waiting to start (a newcomer, or a car paused and not yet due for its turn) joins
# the cars charging on a circuit phase it uses only if it and they keep this much over their minimum
# (A), as a total over the cars there that draw on at least as many phases as it does, each counted for
# no more than it could take (its maximum, what it takes, what its other phases and sub-circuits leave).
# Without it, near saturation every newcomer that fitted its minimum was started and pushed the cars
# already charging down towards the minimum with it (the working day, bench/dlm_day.py, had 12 cars at
# 6.4 A at 11:00). The cars charging came first, and at a workplace they leave first, while a newcomer
# has its day ahead and later takes the room the leavers free; so the early cars are served while they
# are there, as a newcomer already never pushes a running car below its minimum. A car does not wait
# for cars on fewer phases (an amp on the shared phase gives it as much as them, or more), so a 3-phase
# newcomer may start ahead of a 1-phase car that waited longer; prioritised cars and the others each
# count their own group's margins only. The wait is bounded: once due for its turn (`rotate_after`) a
# waiting car starts by the usual rule (in a long-running car's place if short). Admission only gets
# stricter, so never over a limit. The working day's figures, with and without it, and the margins
# tried (2 and 4 A did less): docs/performance.md.
START_MARGIN = 3.0


def _floor_tenth(amps: float) -> float:
    # Rounding down keeps every limit on the safe side of what was computed.
    return math.floor(amps * 10 + 1e-6) / 10


def _ceil_tenth(amps: float) -> float:
    return math.ceil(amps * 10 - 1e-6) / 10


def _phases_used(evse: Evse, state: ConnectorState) -> tuple[int, ...]:
    n = state.phases_in_use or len(evse.phase_map)
    return evse.phase_map[:max(1, min(n, len(evse.phase_map)))]


def _resources(topology: Topology, evse: Evse, site_phases: Iterable[int]) -> tuple[Resource, ...]:
    return tuple((c, p) for c in topology.paths[evse.circuit] for p in site_phases)


def _label(resource: Resource) -> str:
    return f"circuit {resource[0]} {NAMES[resource[1]]}"


def _states(inputs: Inputs) -> dict[EvseKey, ConnectorState]:
    """Every EVSE gets a state; one the shell knows nothing about is treated as
    uncontrollable at its maximum (fail closed)."""
    given = {s.key: s for s in inputs.connectors if s.key in inputs.topology.evse_by_key}
    for evse in inputs.topology.evses:
        if evse.key not in given:
            given[evse.key] = ConnectorState(key=evse.key, controllable=False, reserve=evse.max_current)
    return given


def unmanaged_load(topology: Topology, meters: dict, states: dict[EvseKey, ConnectorState]
                   ) -> dict[str, tuple[list[float], bool]]:
    """Circuit -> (unmanaged A per site phase, failsafe?). A circuit without a
    meter carries only the unmanaged load of its metered sub-circuits."""
    measured: dict[str, list[float]] = {c.id: [0.0, 0.0, 0.0] for c in topology.circuits}
    for evse in topology.evses:
        state = states[evse.key]
        if not state.measured:
            continue
        site = to_site(tuple(max(0.0, a) if math.isfinite(a) else 0.0 for a in state.measured), evse.phase_map)
        for c in topology.paths[evse.circuit]:
            for p in range(3):
                measured[c][p] += site[p]
    out: dict[str, tuple[list[float], bool]] = {}
    # Children before parents: deepest circuits first.
    for circuit in sorted(topology.circuits, key=lambda c: -len(topology.paths[c.id])):
        if circuit.meter is not None:
            reading = meters.get(circuit.id)
            if reading is None or not all(math.isfinite(a) and a >= 0 for a in reading):
                worst = circuit.limit if circuit.failsafe_load is None else circuit.failsafe_load
                out[circuit.id] = ([worst] * 3, True)
            else:
                out[circuit.id] = ([max(0.0, reading[p] - measured[circuit.id][p]) for p in range(3)], False)
        else:
            total, failsafe = [0.0, 0.0, 0.0], False
            for child in topology.circuits:
                if child.parent == circuit.id:
                    load, child_failsafe = out[child.id]
                    total = [t + x for t, x in zip(total, load)]
                    failsafe = failsafe or child_failsafe
            out[circuit.id] = (total, failsafe)
    return out


def _admission_order(inputs: Inputs, keys: list[EvseKey], states: dict[EvseKey, ConnectorState]) -> list[EvseKey]:
    now, turn = inputs.now, inputs.rotate_after
    if inputs.strategy == "scheduled" and inputs.targets is not None:
        # The plan decides turns: its order, then cars it has not seen yet, by arrival.
        place = {k: i for i, k in enumerate(inputs.targets)}
        return sorted(keys, key=lambda k: (0 if states[k].priority else 1, place.get(k, len(place)),
                                           states[k].arrived, k))

    def rank(key: EvseKey) -> tuple:
        s = states[key]
        if s.running_since is not None:
            stage = 0 if now - s.running_since < turn else 2      # protected, then due to give way
            since = s.arrived
        else:
            waited_from = s.paused_since if s.paused_since is not None else s.arrived
            stage = 1 if now - waited_from >= turn else 3         # overdue for its turn, else newcomer
            since = waited_from
        if inputs.strategy == "fcfs" and stage != 1:
            stage, since = 0, s.arrived                           # strictly by arrival, rotation aside
        return (0 if s.priority else 1, stage, since, key)
    return sorted(keys, key=rank)


class _Fill:
    """Water-filling: every rising EVSE moves up to the same level until a
    resource runs out or it reaches its cap. Levels are absolute amps, so two
    cars on the same circuit end at the same current, whatever their minimums."""

    def __init__(self, slack: dict[Resource, float]):
        self.slack = slack

    def run(self, items: list[EvseKey], lo: dict[EvseKey, float], hi: dict[EvseKey, float],
            uses: dict[EvseKey, tuple[Resource, ...]]) -> dict[EvseKey, tuple[float, str, Resource | None]]:
        """-> key: (level, 'cap' | 'resource', resource). `slack` is what is left
        after every item's `lo` was reserved; it is updated in place."""
        result: dict[EvseKey, tuple[float, str, Resource | None]] = {}
        pending = sorted(items, key=lambda k: (lo[k], k))
        members: dict[Resource, set[EvseKey]] = {}
        caps: list[tuple[float, EvseKey]] = []
        rising: set[EvseKey] = set()
        level = lo[pending[0]] if pending else 0.0
        index = 0

        def freeze(key: EvseKey, why: str, resource: Resource | None) -> None:
            rising.discard(key)
            for r in uses[key]:
                members[r].discard(key)
            result[key] = (max(lo[key], level), why, resource)

        while index < len(pending) or rising:
            while index < len(pending) and lo[pending[index]] <= level + EPS:
                key = pending[index]
                index += 1
                tight = [r for r in uses[key] if self.slack[r] <= EPS]
                if hi[key] <= lo[key] + EPS:
                    result[key] = (lo[key], "cap", None)
                elif tight:
                    result[key] = (lo[key], "resource", min(tight, key=lambda r: self.slack[r]))
                else:
                    rising.add(key)
                    heapq.heappush(caps, (hi[key], key))
                    for r in uses[key]:
                        members.setdefault(r, set()).add(key)
            if not rising:
                if index < len(pending):
                    level = lo[pending[index]]
                continue
            while caps and caps[0][1] not in rising:
                heapq.heappop(caps)
            step = caps[0][0] - level
            if index < len(pending):
                step = min(step, lo[pending[index]] - level)
            for r, who in members.items():
                if who:
                    step = min(step, self.slack[r] / len(who))
            step = max(0.0, step)
            level += step
            for r, who in members.items():
                if who:
                    self.slack[r] -= step * len(who)
            while caps and (caps[0][1] not in rising or caps[0][0] <= level + EPS):
                _, key = heapq.heappop(caps)
                if key in rising:
                    freeze(key, "cap", None)
            for r, who in list(members.items()):
                if who and self.slack[r] <= EPS:
                    for key in list(who):
                        freeze(key, "resource", r)
        return result


def allocate(inputs: Inputs) -> Allocation:
    topology = inputs.topology
    states = _states(inputs)
    unmanaged = unmanaged_load(topology, inputs.meters, states)

    reserved: dict[Resource, float] = {(c.id, p): 0.0 for c in topology.circuits for p in range(3)}
    uses: dict[EvseKey, tuple[Resource, ...]] = {}
    phase_count: dict[EvseKey, int] = {}
    for evse in topology.evses:
        state = states[evse.key]
        used = _phases_used(evse, state)
        phase_count[evse.key] = len(used)
        uses[evse.key] = _resources(topology, evse, used)
        hold = state.reserve if not state.controllable else (state.safe_share if state.plugged and not state.session
                                                              else 0.0)
        # A charger we cannot steer may draw on all its phases; keep room on each.
        for r in (_resources(topology, evse, evse.phase_map) if not state.controllable else uses[evse.key]):
            reserved[r] += max(0.0, hold)

    capacity = {(c.id, p): c.limit - topology.margin - unmanaged[c.id][0][p] - reserved[(c.id, p)]
                for c in topology.circuits for p in range(3)}
    slack = dict(capacity)

    def wants(state: ConnectorState) -> bool:
        return state.controllable and (state.session or inputs.strategy == "fixed")
    candidates = [key for key, state in states.items() if wants(state)]
    targets = inputs.targets if inputs.strategy == "scheduled" else None
    decisions: dict[EvseKey, Decision] = {}
    if targets is not None:
        # Planned below its minimum: the car waits for its slot (others leave earlier or need it more).
        for key in [k for k in candidates if targets.get(k, math.inf) < topology.evse_by_key[k].min_current]:
            candidates.remove(key)
            decisions[key] = Decision(key, 0.0, phase_count[key], "paused: scheduled later (cars that leave "
                                                                  "earlier or need more are served first)")
    order = _admission_order(inputs, candidates, states)

    # Prioritised user groups keep full speed (seed 002): they are admitted and
    # filled first, the others share what is left. `fixed` shares are static.
    groups = [order] if inputs.strategy == "fixed" else [[k for k in order if states[k].priority],
                                                         [k for k in order if not states[k].priority]]
    admitted: list[EvseKey] = []
    filled: dict[EvseKey, tuple[float, str, Resource | None]] = {}
    fill = _Fill(slack)
    fair = inputs.strategy == "fair"
    for group in groups:
        taken: list[EvseKey] = []
        # Per circuit phase, and by how many phases each uses: what the cars taken so far claim over
        # their minimum under START_MARGIN.
        claimed: dict[Resource, list[float]] = {}
        for key in group:
            evse = topology.evse_by_key[key]
            need = _ceil_tenth(evse.min_current)
            if need > evse.max_current + EPS:
                decisions[key] = Decision(key, 0.0, phase_count[key], f"paused: its minimum {need:g} A is above"
                                                                      f" its maximum {evse.max_current:g} A")
                continue
            ceiling = states[key].ceiling
            if ceiling is not None and ceiling < need - EPS:
                decisions[key] = Decision(key, 0.0, phase_count[key], f"paused: the station's external limit "
                                                                      f"{max(0.0, ceiling):g} A is below its "
                                                                      f"minimum {need:g} A")
                continue
            if states[key].resting:
                decisions[key] = Decision(key, 0.0, phase_count[key], "paused: the car takes nothing (it said "
                                          "so, SuspendedEV); its minimum is offered again every "
                                          f"{inputs.rotate_after:g} s")
                continue
            state = states[key]
            resuming = (state.running_since is None and state.paused_since is not None
                        and inputs.now - state.paused_since < inputs.rotate_after and inputs.strategy != "fixed")
            waited_from = state.paused_since if state.paused_since is not None else state.arrived
            starting = (fair and not state.priority and state.running_since is None
                        and inputs.now - waited_from < inputs.rotate_after)
            claim = min(START_MARGIN, max(0.0, _cap(evse, state, inputs.strategy) - need)) if fair else 0.0
            over = dict.fromkeys(uses[key], RESUME_MARGIN if resuming else 0.0)
            if starting:
                for r in uses[key]:
                    # It waits only for cars that draw on at least as many phases: on the phase they share,
                    # an amp gives them as much energy as it would give it. A 3-phase car does not wait so
                    # that a 1-phase car keeps its margin: that would trade two thirds of the energy away.
                    # With no such car there it starts with its minimum: waiting would leave the phase unused.
                    others = sum(claimed.get(r, (0.0,) * 4)[phase_count[key]:])
                    if others > EPS:
                        over[r] = max(over[r], claim + others)
            short = [r for r in uses[key] if slack[r] < need + over[r] - EPS]
            if short:
                worst = min(short, key=lambda r: (slack[r], r))
                behind = any(worst in uses[k] for k in admitted) and not states[key].priority
                spread = starting and slack[worst] >= need + (RESUME_MARGIN if resuming else 0.0) - EPS
                decisions[key] = Decision(key, 0.0, phase_count[key],
                                          _paused_reason(inputs, worst, slack[worst], need, unmanaged, behind,
                                                         spread), worst)
                continue
            for r in uses[key]:
                slack[r] -= need
            # A car claims only the margin it could use: one held lower by a sub-circuit or another phase
            # (slack only shrinks from here) must not keep a waiting car off the room it leaves.
            claim = min(claim, min((slack[r] for r in uses[key]), default=0.0))
            if claim > 0:
                for r in uses[key]:
                    claimed.setdefault(r, [0.0] * 4)[phase_count[key]] += claim
            taken.append(key)
        lo = {k: _ceil_tenth(topology.evse_by_key[k].min_current) for k in taken}
        hi = {k: _cap(topology.evse_by_key[k], states[k], inputs.strategy) for k in taken}
        if targets is not None:
            # Up to its target in the plan's order, then what is left shared fairly.
            for key in taken:
                room = min((slack[r] for r in uses[key]), default=0.0)
                extra = max(0.0, min(min(hi[key], targets.get(key, lo[key])) - lo[key], room))
                for r in uses[key]:
                    slack[r] -= extra
                lo[key] += extra
            filled.update(fill.run(taken, lo, {k: max(lo[k], hi[k]) for k in taken}, uses))
        elif inputs.strategy == "fcfs":
            for key in taken:
                room = min((slack[r] for r in uses[key]), default=0.0)
                extra = max(0.0, min(hi[key] - lo[key], room))
                for r in uses[key]:
                    slack[r] -= extra
                binding = min(uses[key], key=lambda r: (slack[r], r)) if extra < hi[key] - lo[key] - EPS else None
                filled[key] = (lo[key] + extra, "resource" if binding else "cap", binding)
        else:
            filled.update(fill.run(taken, lo, hi, uses))
        admitted += taken

    prioritised_on = {r for k in admitted if states[k].priority for r in uses[k]}
    for key in admitted:
        level, why, resource = filled[key]
        evse, state = topology.evse_by_key[key], states[key]
        limit = _floor_tenth(min(evse.max_current, level))   # on the tenth grid even for a maximum like 6.999999999999993
        decisions[key] = Decision(key, limit, phase_count[key],
                                  _limited_reason(inputs, evse, state, limit, why, resource, unmanaged,
                                                  not state.priority and resource in prioritised_on),
                                  resource)
    for key, state in states.items():
        if key in decisions:
            continue
        evse = topology.evse_by_key[key]
        if not state.controllable and (state.session or state.plugged):
            why = state.why_uncontrollable or "offline or refusing profiles"
            decisions[key] = Decision(key, 0.0, phase_count[key],
                                      f"not controllable ({why}): {state.reserve:g} A held for it")
    return Allocation(decisions, _circuit_loads(topology, capacity, reserved, unmanaged, inputs.meters,
                                                decisions, uses, states))


def _cap(evse: Evse, state: ConnectorState, strategy: str) -> float:
    cap = evse.max_current
    if strategy in ("fair", "scheduled") and state.demand is not None:
        cap = max(evse.min_current, min(evse.max_current, state.demand))
    if state.ceiling is not None:
        # Admitted only when the ceiling is at least its minimum (above), so this stays >= the minimum.
        cap = min(cap, max(evse.min_current, state.ceiling))
    return cap


def _paused_reason(inputs: Inputs, resource: Resource, left: float, need: float, unmanaged: dict,
                   behind_priority: bool, spread: bool = False) -> str:
    # Rounded down: 5.96 A shown as "6.0 A left, below the 6 A minimum" reads as a contradiction.
    shown = math.floor(max(0.0, left) * 10) / 10
    if spread:
        text = (f"paused: {_label(resource)} has {shown:.1f} A left; a car starts when every car charging "
                f"there keeps {START_MARGIN:g} A over its minimum")
    elif left >= need - EPS:
        text = (f"paused: {_label(resource)} has {shown:.1f} A left; a paused car resumes with "
                f"{RESUME_MARGIN:g} A over its {need:g} A minimum")
    else:
        text = f"paused: {_label(resource)} has {shown:.1f} A left, below the {need:g} A minimum"
    if unmanaged[resource[0]][1]:
        text += " (failsafe: meter lost, worst-case load assumed)"
    if behind_priority:
        text += "; prioritised user groups served first"
    return text + f"; paused cars take turns every {inputs.rotate_after:g} s"


def _limited_reason(inputs: Inputs, evse: Evse, state: ConnectorState, limit: float, why: str,
                    resource: Resource | None, unmanaged: dict, behind_priority: bool) -> str:
    if why == "cap":
        if state.ceiling is not None and limit >= state.ceiling - 0.1 - EPS and limit < evse.max_current - EPS:
            return f"held at {state.ceiling:g} A by the station's external limit (NotifyChargingLimit)"
        if inputs.strategy == "fair" and state.demand is not None and limit < evse.max_current - EPS:
            return f"the car takes about {state.demand:.1f} A; the rest goes to other cars"
        if limit <= evse.min_current + EPS and evse.max_current <= evse.min_current + EPS:
            return f"at its minimum {evse.min_current:g} A"
        return f"at the EVSE's maximum {evse.max_current:g} A"
    assert resource is not None
    text = f"limited by {_label(resource)}"
    if unmanaged[resource[0]][1]:
        text += " (failsafe: meter lost, worst-case load assumed)"
    if inputs.strategy == "fixed":
        text += "; fixed share"
    elif inputs.strategy == "fcfs":
        text += "; earlier cars served first"
    if behind_priority:
        text += "; prioritised user groups served first"
    return text


def _circuit_loads(topology: Topology, capacity: dict, reserved: dict, unmanaged: dict, meters: dict,
                   decisions: dict[EvseKey, Decision], uses: dict, states: dict) -> dict[str, CircuitLoad]:
    allocated = {r: 0.0 for r in capacity}
    for key, decision in decisions.items():
        if decision.limit > 0 and states[key].controllable:
            for r in uses[key]:
                allocated[r] += decision.limit
    out = {}
    for c in topology.circuits:
        reading = meters.get(c.id) if c.meter else None
        out[c.id] = CircuitLoad(c.id, unmanaged[c.id][1], tuple(
            PhaseLoad(limit=c.limit, unmanaged=unmanaged[c.id][0][p], reserved=reserved[(c.id, p)],
                      allocated=allocated[(c.id, p)], metered=reading[p] if reading else None)
            for p in range(3)))  # type: ignore[arg-type]
    return out
