"""A workplace day in simulated time: cars, a building, and the load manager's decisions.

No sockets and no sleeping: one step per second of site time. Each second

1. the cars move towards the current they were offered (simulator.car: a new
   limit is followed with a ramp of at most 5 s, the battery fills, a full car
   stops drawing), and the building's base load takes its value for the second;
2. what the chargers report reaches the load manager as the edge's own events:
   status changes, transactions starting and stopping, and MeterValues per
   charger at the interval the edge asks for (`meter_values_interval`, 3 s;
   10 s, as most chargers ship, when it asks for none), Current.Import per
   phase, 0.1 A, as the simulator sends it;
3. the grid meter reads base load + the cars' real draw, and the controller
   decides: `allocate` (pure) over the connector states, then `plan` (pure)
   for which SetChargingProfile requests go out now; a request takes effect at
   once at the charger, and the car starts following it.

The connector states come from the edge's own `LoadManager`, fed with the same
events the OCPP layer would publish, so the demand estimate, the learned
phases and the measured-draw clamp are the shipped rules, not a copy of them.
Its asyncio loop and OCPP sends are not used: `plan`'s requests are applied
here, the way `LoadManager._send` records them once a charger has accepted.

The planned strategies (`scheduled`, and the baselines `edf`, `llf`,
`round_robin` and `round_robin_blind`) run the planner (edge/dlm/planner.py,
pure) every `PLAN_PERIOD_S` and whenever a session starts or stops or a car's
maximum becomes known (planner.known_maxima), told each
car's departure and what its battery can still take (the same for every
strategy; `round_robin_blind`, like `fair`, uses neither);
its targets go to `allocate` with the `scheduled` strategy, which stays the
safety loop every second.

Overload is measured on the real currents (base + cars), per circuit and
phase, against the fuse limit. An overload is tolerated for the cars' 5 s
reaction window from its start; every A*s after that is counted.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from edge.clock import Clock
from edge.dlm.actuation import held_after
from edge.dlm.allocate import allocate
from edge.dlm.config import LoadManagementSection
from edge.dlm.estimate import Command
from edge.dlm.manager import LoadManager
from edge.dlm.model import STRATEGIES, Allocation, Circuit, ConnectorState, Evse, EvseKey, Inputs, Topology
from edge.dlm.planner import PLAN_PERIOD_S as PLANNER_PERIOD_S, POLICIES, Need, Plan, known_maxima, plan_cars, plan_now
from edge.dlm.phases import ROTATIONS, phase_map, to_site
from edge.dlm.tracking import learn_take, prune
from edge.events import Event, EventBus
from edge.journal import Sample
from simulator.car import NO_CURRENT, Car, Meter, step, target_currents

VOLTAGE = 230.0
# A car follows a new limit within this many seconds (IEC 61851-1); the whole
# range of its EVSE in that time, so any change is complete within it.
REACTION_S = 5.0
# From plugging in to the transaction starting (card at the reader).
PREPARING_S = 20
METER_VALUES_S = 10
HOUR = 3600
# The departure-aware strategies re-plan as often as the edge does (s), and at every session start and stop.
PLAN_PERIOD_S = int(PLANNER_PERIOD_S)
# Every strategy the day runs: the edge's own, then the planner's baselines.
DAY_STRATEGIES = STRATEGIES + tuple(p for p in POLICIES if p not in STRATEGIES)


@dataclass(frozen=True)
class CarPlan:
    """One car's visit: where, when, what it is and how much it can take."""

    tag: str
    evse: int                  # index into the site's EVSEs
    plug_in: int               # s since midnight
    leave: int
    max_current: float         # A per phase the car takes
    phases: int
    capacity_wh: float
    soc: float                 # % at arrival
    meter_offset: int          # s into each 10 s MeterValues period its charger samples
    priority: bool = False

    @property
    def start(self) -> int:
        return self.plug_in + PREPARING_S

    @property
    def room_wh(self) -> float:
        return (100.0 - self.soc) / 100.0 * self.capacity_wh


@dataclass(frozen=True)
class Day:
    name: str
    seed: int
    begin: int                 # s since midnight
    end: int
    topology: Topology
    metered: str               # the circuit the grid meter measures (the grid connection)
    cars: tuple[CarPlan, ...]
    base: tuple[tuple[float, float, float], ...]   # building load per second from `begin`, A per site phase
    failsafe_load: float
    base_share: float = 1.0    # the building's load as a share of BUILDING_PROFILE (its typical day)

    def base_at(self, t: int) -> tuple[float, float, float]:
        return self.base[t - self.begin]


# --- the scenario ----------------------------------------------------------------------------------

# Office building, A per phase at each hour (between hours: linear): night
# standby, HVAC and people from 7 h, lunch (kitchen) peak, decline after 17 h.
BUILDING_PROFILE = ((0, 14.0), (6, 15.0), (7, 24.0), (8, 38.0), (9, 44.0), (11, 46.0), (12, 58.0), (13, 52.0),
                    (14, 45.0), (17, 40.0), (18, 28.0), (19, 20.0), (22, 15.0), (24, 14.0))
PHASE_SHARE = (1.12, 1.0, 0.88)     # the building's L1 carries most single-phase loads


def _profile(hours: float) -> float:
    for (h0, a0), (h1, a1) in zip(BUILDING_PROFILE, BUILDING_PROFILE[1:]):
        if h0 <= hours <= h1:
            return a0 + (a1 - a0) * (hours - h0) / (h1 - h0)
    return BUILDING_PROFILE[-1][1]


def base_load(rng: random.Random, begin: int, end: int, scale: float, cap: float
              ) -> tuple[tuple[float, float, float], ...]:
    """Per second: the hourly profile held for a minute at a time with some
    jitter, plus short peaks (lifts, coffee machines, the kitchen) that start
    and stop at any second, on one phase or all three."""
    minutes = (end - begin + 59) // 60
    level = [scale * _profile((begin + 60 * m) / HOUR) + rng.uniform(-1.5, 1.5) * scale for m in range(minutes)]
    peaks = []
    busy_from, busy_to = max(begin, 7 * HOUR), min(end, 19 * HOUR)
    count = int(round(3.0 * (busy_to - busy_from) / HOUR)) if busy_to > busy_from else 0
    for _ in range(count):
        start = rng.randrange(busy_from, busy_to)
        length = rng.randrange(20, 600)
        amps = rng.uniform(4.0, 18.0) * scale
        phases = (rng.randrange(3),) if rng.random() < 0.6 else (0, 1, 2)
        peaks.append((start, start + length, amps, phases))
    out = []
    for t in range(begin, end):
        a = level[(t - begin) // 60]
        per = [a * PHASE_SHARE[p] for p in range(3)]
        for start, stop, amps, phases in peaks:
            if start <= t < stop:
                for p in phases:
                    per[p] += amps
        out.append(tuple(round(min(cap, max(0.0, x)), 2) for x in per))
    return tuple(out)  # type: ignore[return-value]


def site(evse_count: int, limits: tuple[float, float, float], failsafe_load: float) -> Topology:
    """Grid connection with a meter, two garages as sub-circuits (60 % and 40 %
    of the EVSEs); 3-phase 32 A wallboxes with their rotations spread, and a
    1-phase one in each garage."""
    grid = Circuit("grid", limits[0], meter="grid-meter", failsafe_load=failsafe_load)
    split = max(1, round(evse_count * 0.6))
    garages = (Circuit("garage-a", limits[1], parent="grid"), Circuit("garage-b", limits[2], parent="grid"))
    evses = []
    for i in range(evse_count):
        circuit = garages[0].id if i < split else garages[1].id
        one_phase = i in (split - 1, evse_count - 1) and evse_count >= 4
        mapping = phase_map(1, phase=("L2", "L3")[i >= split]) if one_phase else phase_map(3, ROTATIONS[i % 6])
        evses.append(Evse(f"WB{i + 1:02d}", 1, circuit, mapping, max_current=32.0))
    return Topology((grid, *garages), tuple(evses), 1.0)


@dataclass(frozen=True)
class DayShape:
    begin: int
    end: int
    cars: int
    arrive_morning: tuple[int, int, int]   # triangular: low, high, mode (s since midnight)
    arrive_midday: tuple[int, int]         # uniform
    midday_share: float
    dwell: tuple[int, int]                 # uniform, s
    limits: tuple[float, float, float]     # A per phase: grid connection, garage A, garage B
    building: float                        # the building's load, as a share of BUILDING_PROFILE
    failsafe_load: float                   # A per phase the grid meter's circuit assumes when the meter is lost


FULL_DAY = DayShape(0, 24 * HOUR, 20, (7 * HOUR, 10 * HOUR, 8 * HOUR), (11 * HOUR, 14 * HOUR), 0.25,
                    (3 * HOUR, 9 * HOUR), (160.0, 100.0, 63.0), 1.0, 90.0)
# The test's day: two hours, five cars that arrive in the first 40 minutes and stay 40 to 90.
QUICK_DAY = DayShape(7 * HOUR, 9 * HOUR, 5, (7 * HOUR, 7 * HOUR + 2400, 7 * HOUR + 600),
                     (7 * HOUR + 1200, 7 * HOUR + 2400), 0.2, (2400, 5400), (63.0, 40.0, 32.0), 0.35, 35.0)

# Cars that come to work: some 1-phase (older or smaller cars), most 3-phase, 16 or 32 A.
CAR_KINDS = ((1, 16.0, 1), (1, 32.0, 1), (3, 16.0, 4), (3, 32.0, 4))   # phases, A, weight


def workplace_day(seed: int = 2026, shape: DayShape = FULL_DAY) -> Day:
    rng = random.Random(seed)
    topology = site(shape.cars, shape.limits, shape.failsafe_load)
    kinds = [k for k in CAR_KINDS for _ in range(k[2])]
    places = list(range(shape.cars))
    rng.shuffle(places)
    cars = []
    for n in range(shape.cars):
        if rng.random() < shape.midday_share:
            plug_in = int(rng.uniform(*shape.arrive_midday))
        else:
            low, high, mode = shape.arrive_morning
            plug_in = int(rng.triangular(low, high, mode))
        leave = min(shape.end - 60, plug_in + int(rng.uniform(*shape.dwell)))
        phases, amps, _ = rng.choice(kinds)
        capacity = rng.choice((40.0, 52.0, 58.0, 64.0, 77.0, 82.0, 100.0)) * 1000.0
        cars.append(CarPlan(tag=f"CAR-{n + 1:02d}", evse=places[n], plug_in=plug_in, leave=leave,
                            max_current=amps, phases=phases, capacity_wh=capacity,
                            soc=round(rng.uniform(20.0, 80.0), 1), meter_offset=rng.randrange(METER_VALUES_S),
                            priority=n < max(1, shape.cars // 10)))
    cars.sort(key=lambda c: c.plug_in)
    return Day(name="workplace", seed=seed, begin=shape.begin, end=shape.end, topology=topology, metered="grid",
               cars=tuple(cars), base=base_load(rng, shape.begin, shape.end, shape.building,
                                                      shape.failsafe_load),
               failsafe_load=shape.failsafe_load, base_share=shape.building)


# --- the site in motion ----------------------------------------------------------------------------

@dataclass
class Charger:
    """One EVSE and the car on it, as the charger sees them."""

    evse: Evse
    default: float                          # its TxDefaultProfile limit (the safe share)
    car: CarPlan | None = None
    model: Car | None = None
    meter: Meter = field(default_factory=Meter)
    target: tuple[float, float, float] = NO_CURRENT
    transaction_id: int | None = None
    limit: float | None = None              # the TxProfile in force; None: the default
    profile_phases: int | None = None
    status: str = "Available"

    def offered(self) -> float:
        return min(self.evse.max_current, self.default if self.limit is None else self.limit)

    def retarget(self) -> None:
        if self.transaction_id is None or self.model is None:
            self.target = NO_CURRENT
            return
        phases = min(len(self.evse.phase_map), self.profile_phases or 3)
        self.target = target_currents(self.offered(), self.model, self.meter.soc, phases)

    def derived_status(self) -> str:
        # As simulator.connector derives it.
        if self.car is None:
            return "Available"
        if self.transaction_id is None:
            return "Preparing"
        if self.offered() < 6.0:
            return "SuspendedEVSE"
        if self.meter.soc is not None and self.meter.soc >= 100.0:
            return "SuspendedEV"
        return "Charging"

    def site_currents(self) -> tuple[float, float, float]:
        return to_site(self.meter.currents[:len(self.evse.phase_map)], self.evse.phase_map)


@dataclass
class Overload:
    """Per circuit phase: how long and how far above its limit."""

    window: float = REACTION_S
    started: dict = field(default_factory=dict)      # (circuit, phase) -> first second of this overload
    beyond_window_as: float = 0.0
    total_as: float = 0.0
    max_excess_a: float = 0.0
    longest_s: int = 0
    episodes: int = 0

    def add(self, t: int, resource: tuple[str, int], excess: float) -> None:
        if excess <= 1e-9:
            self.started.pop(resource, None)
            return
        if resource not in self.started:
            self.started[resource] = t
            self.episodes += 1
        lasted = t - self.started[resource]
        self.total_as += excess
        self.max_excess_a = max(self.max_excess_a, excess)
        self.longest_s = max(self.longest_s, lasted + 1)
        if lasted > self.window:
            self.beyond_window_as += excess


class _Allocator:
    """`allocate` with the last answer kept: inputs repeat most seconds (the
    meter and the states only change when something happens). `now` matters
    to the allocator only where a paused or running car crosses `rotate_after`,
    so the answer is reused until the next such moment."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.calls = 0
        self.computed = 0
        self._key: tuple | None = None
        self._until = -math.inf
        self._answer: Allocation | None = None

    def __call__(self, inputs: Inputs) -> Allocation:
        self.calls += 1
        key = (tuple(sorted(inputs.meters.items())), inputs.connectors, inputs.strategy, inputs.rotate_after,
               None if inputs.targets is None else tuple(inputs.targets.items()))
        if self.enabled and key == self._key and inputs.now < self._until:
            return self._answer  # type: ignore[return-value]
        self.computed += 1
        self._answer = allocate(inputs)
        self._key = key
        self._until = _next_turn(inputs.connectors, inputs.now, inputs.rotate_after)
        return self._answer


def _next_turn(states: tuple[ConnectorState, ...], now: float, turn: float) -> float:
    moments = []
    for s in states:
        if s.running_since is not None:
            moments.append(s.running_since + turn)
        else:
            moments.append((s.paused_since if s.paused_since is not None else s.arrived) + turn)
    return min((m for m in moments if m > now), default=math.inf)


@dataclass
class DayResult:
    strategy: str
    energy_kwh: float
    energy_by_car_kwh: dict[str, float]
    wanted_kwh: float                      # what the batteries could take
    overload: Overload
    orders: dict[str, int]
    suspended_evse_s: int                  # car-seconds offered less than 6 A (paused, or held below the minimum)
    suspended_ev_s: int                    # car-seconds full cars sat on a session
    alerts: dict[str, int]                 # what the load manager reported (dlm.over_limit, ...)
    evaluations: int
    allocations_computed: int
    cpu_s: float
    plan_cpu_s: list[float] = field(default_factory=list)   # each plan's CPU time (departure-aware strategies)
    solvers: dict[str, int] = field(default_factory=dict)   # `scheduled`: plans by the LP, and by the greedy and why
    # The highest Current.Import each car's charger reported (A), as the journal keeps its samples: what
    # the edge learns of the car's token for the next day (history.TokenHistory.drew_of).
    drew_by_car: dict[str, float] = field(default_factory=dict)
    # For diagnosis (`python -m bench dlm --detail`): kWh delivered in each hour of the day (hour -> kWh),
    # and per hour the mean of what the metered circuit's tightest phase had left (limit - margin - real
    # load, A) over the seconds a car was plugged in: the room no car was using.
    energy_by_hour_kwh: dict[int, float] = field(default_factory=dict)
    headroom_by_hour_a: dict[int, float] = field(default_factory=dict)


def simulate(day: Day, strategy: str, *, meter_values_s: int | None = None, settings: dict | None = None,
             reuse_allocations: bool = True, observe: Callable[..., None] | None = None,
             drew_before: dict[str, float] | None = None) -> DayResult:
    """The day under `strategy`, with the edge's default load-management settings
    unless `settings` overrides some. `observe(t, chargers, load, allocation,
    manager)` is called after each decision, for diagnosis. `drew_before`: the most
    each car (by its token) drew on an earlier day (DayResult.drew_by_car), which the
    planner knows from each session's start, as the edge learns it from the token's past
    sessions (history.TokenHistory.drew_of)."""
    cpu_start = time.process_time()
    topology = day.topology
    planned = strategy in POLICIES
    section = LoadManagementSection(**{"margin": topology.margin, **(settings or {}),
                                       "strategy": "scheduled" if planned else strategy})
    if meter_values_s is None:
        # The chargers send MeterValues at the interval the edge sets (MeterValueSampleInterval,
        # `meter_values_interval`), as the real-time scenarios' chargers do; 0 leaves theirs (10 s).
        meter_values_s = int(section.meter_values_interval) or METER_VALUES_S
    now_box = [float(day.begin)]
    wall0 = datetime(2026, 11, 23, tzinfo=timezone.utc)
    clock = Clock(wall=lambda: wall0, monotonic=lambda: now_box[0])
    prioritised = {c.tag for c in day.cars if c.priority}
    # The edge's load manager, for its view of each connector; its loop never runs.
    bus = EventBus()
    alerts = bus.subscribe()
    manager = LoadManager(topology, section, bus=bus, clock=clock,
                          control=None, journal=None,  # type: ignore[arg-type]
                          meters={}, prioritised=lambda tag: tag in prioritised, is_known=lambda _: True)
    chargers = [Charger(e, manager.charger_default(e.charger_id)[0]) for e in topology.evses]
    # Every charger of the day is online and has accepted its default profile (the edge holds a charger's
    # maximum until it has: that start-up is measured by the reaction benchmark, not over a day).
    for charger in chargers:
        track = manager.chargers[charger.evse.charger_id]
        track.online, track.default_sent = True, charger.default
    by_key = {c.evse.key: c for c in chargers}
    arrivals = sorted(day.cars, key=lambda c: c.plug_in)
    next_arrival = 0
    next_tx = 1
    allocator = _Allocator(reuse_allocations)
    overload = Overload()
    orders = {"decrease": 0, "increase": 0, "renew": 0}
    last_decrease = -math.inf
    paused_s = suspended_s = evaluations = 0
    energy_by_car = {c.tag: 0.0 for c in day.cars}
    energy_by_hour: dict[int, float] = {}
    headroom: dict[int, list[float]] = {}     # hour -> [sum of A left on the tightest phase, seconds]
    drew_by_car: dict[str, float] = {}
    # The most each session's car has drawn (the estimate's least, A per phase), and the most it drew
    # when found taking less than its limit (tracking.learn_take), for the planner (planner.plan_cars'
    # `drew` and `took`: what the load manager keeps per session, Track.drew and Track.took).
    drew: dict[EvseKey, float] = {}
    took: dict[EvseKey, float] = {}
    targets: dict | None = None
    planned_at = -math.inf
    sessions_seen: tuple = ()
    plan_cpu: list[float] = []
    solvers: dict[str, int] = {}
    allocation: Allocation | None = None
    paths = topology.paths
    limits = {c.id: c.limit for c in topology.circuits}
    # What the manager says of a connector with nothing on it; it does not change.
    idle = {e.key: manager._state(e.key, float(day.begin)) for e in topology.evses}

    def publish(kind: str, charger: Charger, **data) -> None:
        manager.on_event(Event(kind, charger.evse.charger_id, "", data))

    def report_status(charger: Charger) -> None:
        status = charger.derived_status()
        if status != charger.status:
            charger.status = status
            publish("connector.status", charger, connector_id=1, status=status)

    for t in range(day.begin, day.end):
        now_box[0] = float(t)
        # 1. Physics of the last second.
        for c in chargers:
            if c.model is not None and c.transaction_id is not None and not (
                    c.target == NO_CURRENT and c.meter.currents == NO_CURRENT):
                before = c.meter.energy_wh
                c.meter = step(c.meter, c.target, 1.0, slew=c.evse.max_current / REACTION_S, voltage=VOLTAGE,
                               capacity_wh=c.model.capacity_wh)
                energy_by_car[c.car.tag] += c.meter.energy_wh - before  # type: ignore[union-attr]
                energy_by_hour[t // HOUR] = energy_by_hour.get(t // HOUR, 0.0) + c.meter.energy_wh - before
                if c.meter.soc is not None and c.meter.soc >= 100.0 and c.target != NO_CURRENT:
                    c.retarget()
                    report_status(c)
        # 2. What happens at the chargers, reported as the OCPP layer would.
        while next_arrival < len(arrivals) and arrivals[next_arrival].plug_in <= t:
            plan_ = arrivals[next_arrival]
            next_arrival += 1
            c = chargers[plan_.evse]
            c.car, c.model = plan_, Car(max_current=plan_.max_current, phases=plan_.phases,
                                        capacity_wh=plan_.capacity_wh)
            c.meter = Meter(soc=plan_.soc)
            report_status(c)
        for c in chargers:
            if c.car is None:
                continue
            if c.transaction_id is None and t >= c.car.start and t < c.car.leave:
                c.transaction_id, next_tx = next_tx, next_tx + 1
                c.limit = c.profile_phases = None
                publish("transaction.started", c, connector_id=1, transaction_id=c.transaction_id, id_tag=c.car.tag)
                if drew_before and c.car.tag in drew_before:
                    drew[c.evse.key] = drew_before[c.car.tag]
                c.retarget()
                report_status(c)
            elif t >= c.car.leave:
                if c.transaction_id is not None:
                    publish("transaction.stopped", c, connector_id=1, transaction_id=c.transaction_id)
                c.car = c.model = None
                c.transaction_id = c.limit = c.profile_phases = None
                c.meter = Meter()
                c.retarget()
                report_status(c)
            elif c.transaction_id is not None and \
                    (t - c.car.start) % meter_values_s == c.car.meter_offset % meter_values_s:
                samples = [Sample(1, c.transaction_id, "", "Current.Import", f"L{i + 1}",
                                  round(c.meter.currents[i], 1), "A", "Sample.Periodic", "Outlet")
                           for i in range(len(c.evse.phase_map))]
                publish("meter.values", c, connector_id=1, transaction_id=c.transaction_id, samples=samples)
                drew_by_car[c.car.tag] = max(drew_by_car.get(c.car.tag, 0.0), *(s.value for s in samples))
        # 3. The real currents, against every limit.
        base = day.base_at(t)
        load = {cid: [0.0, 0.0, 0.0] for cid in limits}
        for c in chargers:
            if c.meter.currents != NO_CURRENT:
                site_amps = c.site_currents()
                for cid in paths[c.evse.circuit]:
                    row = load[cid]
                    for p in range(3):
                        row[p] += site_amps[p]
        for p in range(3):
            load[day.metered][p] += base[p]
        for cid, row in load.items():
            for p in range(3):
                overload.add(t, (cid, p), row[p] - limits[cid])
        for c in chargers:
            if c.transaction_id is not None:
                if c.status == "SuspendedEVSE":
                    paused_s += 1
                elif c.status == "SuspendedEV":
                    suspended_s += 1
        # 4. The controller: the meter's reading and what it knows of each connector.
        if not any(c.car is not None for c in chargers):
            continue  # nothing to decide: no session, no car waiting
        evaluations += 1
        meter = tuple(round(x, 2) for x in load[day.metered])
        room = headroom.setdefault(t // HOUR, [0.0, 0])
        room[0] += min(limits[day.metered] - topology.margin - a for a in load[day.metered])
        room[1] += 1
        # What LoadManager.evaluate does: the meter's reading kept for the estimator, then every car's
        # draw estimated from its samples, the limits it was sent and the meter's rises.
        manager.record_reading(day.metered, float(t), meter)
        estimated = manager.estimates(float(t))
        states = tuple(idle[e.key] if c.car is None and manager.tracks[e.key].transaction_id is None
                       else manager._state(e.key, float(t), estimated) for e, c in zip(topology.evses, chargers))
        for s in states:
            if s.session and s.measured:
                drew[s.key] = max(drew.get(s.key, 0.0), *s.measured)
            elif not s.session:
                drew.pop(s.key, None)
            if s.session:
                took[s.key] = learn_take(took.get(s.key, 0.0), manager.tracks[s.key].takes,
                                         topology.evse_by_key[s.key].min_current)
            else:
                took.pop(s.key, None)
        if planned:
            # Re-planned when a session starts or stops, or a car's maximum becomes known, as the edge does.
            sessions = (frozenset(s.key for s in states if s.session),
                        known_maxima(plan_cars(topology, states, {}, drew, None, took)))
            if t - planned_at >= PLAN_PERIOD_S or sessions != sessions_seen:
                if allocation is None:
                    allocation = allocate(Inputs(topology, {day.metered: meter}, states, float(t), "fair"))
                cpu0 = time.process_time()
                made = _plan(day, chargers, states, allocation, energy_by_car, strategy, t, drew, took)
                plan_cpu.append(time.process_time() - cpu0)
                targets = made.handed()
                if made.solver:
                    solvers[made.solver] = solvers.get(made.solver, 0) + 1
                planned_at, sessions_seen = t, sessions
        allocation = allocator(Inputs(topology, {day.metered: meter}, states, float(t), section.strategy,
                                      section.rotate_after, targets))
        manager._note_turns(allocation, float(t))
        for order in manager.orders(allocation, states, {day.metered: meter}, targets, float(t), last_decrease):
            # The charger accepts at once: what LoadManager._send records, and the car starts following.
            orders[order.kind] += 1
            track = manager.tracks[order.key]
            track.commands += (Command(order.limit, float(t), float(t), True),)
            prune(track, float(t), manager.reaction.follow)
            track.held = held_after(order, track.held, float(t), float(t) + section.tx_profile_duration,
                                    manager.safe_share.get(order.key, 0.0))
            if order.kind == "decrease":
                last_decrease = float(t)
            c = by_key[order.key]
            c.limit, c.profile_phases = order.limit, order.phases
            c.retarget()
            report_status(c)
        if observe is not None:
            observe(t, chargers, load, allocation, manager)
    wanted = sum(c.room_wh for c in day.cars if c.leave > c.start) / 1000.0
    reported: dict[str, int] = {}
    while not alerts.queue.empty():
        kind = alerts.queue.get_nowait().kind
        reported[kind] = reported.get(kind, 0) + 1
    return DayResult(strategy=strategy, energy_kwh=sum(energy_by_car.values()) / 1000.0,
                     energy_by_car_kwh={k: round(v / 1000.0, 3) for k, v in energy_by_car.items()},
                     wanted_kwh=wanted, overload=overload, orders=orders, suspended_evse_s=paused_s,
                     suspended_ev_s=suspended_s, alerts=reported, evaluations=evaluations,
                     allocations_computed=allocator.computed, cpu_s=time.process_time() - cpu_start,
                     plan_cpu_s=plan_cpu, solvers=solvers, drew_by_car=drew_by_car,
                     energy_by_hour_kwh={h: round(wh / 1000.0, 3) for h, wh in sorted(energy_by_hour.items())},
                     headroom_by_hour_a={h: round(a / n, 2) for h, (a, n) in sorted(headroom.items()) if n})


def _plan(day: Day, chargers: list[Charger], states: tuple[ConnectorState, ...], allocation: Allocation,
          energy_by_car: dict[str, float], policy: str, t: int, drew: dict[EvseKey, float] | None = None,
          took: dict[EvseKey, float] | None = None) -> Plan:
    """The plan now: each car's departure and what its battery can still take are known
    (as a driver's declared need would be; `round_robin_blind` ignores them), the capacity
    is what the allocator last saw (the building's load now, held over the horizon); the
    allocator is handed what the load manager hands it (Plan.handed)."""
    needs = {c.evse.key: Need(float(c.car.leave), max(0.0, c.car.room_wh - energy_by_car[c.car.tag]))
             for c in chargers if c.car is not None}
    return plan_now(day.topology, states, needs, allocation, float(t), policy, drew=drew, took=took)
