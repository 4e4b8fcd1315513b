"""The scenarios' world: what is wired, what the building draws, what the cars do, and what is measured.

A scenario is data (`Scenario`): a 3-phase grid connection with its fuse,
chargers with their phase rotation, cars that plug in and leave, a scripted
building load per phase, and events (the meter goes silent, a charger loses
its network). `World` plays one scenario in real time against one controller
(the edge, or the bench's naive one): a simulated SDM630 over Modbus TCP whose
readings are the building plus what the cars really draw, and simulated OCPP
1.6J chargers whose cars follow a new limit only after their reaction delay.
It measures the real currents ten times a second, the energy delivered, and
every TxProfile the chargers accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Callable

from bench.dlm_scenario_shed import shed_amps
from edge.dlm.phases import phase_map, to_site
from simulator import profiles
from simulator.charge_point import SimulatedChargePoint
from simulator.meter import SimulatedMeter

Phases = tuple[float, float, float]
VOLTAGE = 230.0
MARGIN = 1.0                 # A per phase, the edge's default, given to both controllers and the LP
CAR_REACTION_S = 5.0         # IEC 61851-1: a car has 5 s to follow a lower pilot signal
# What a controller may take on top: one meter period (1 s, the edge's default
# poll) plus half a second to decide and send the profile over OCPP.
CONTROLLER_REACTION_S = 1.5
WINDOW_S = CAR_REACTION_S + CONTROLLER_REACTION_S
RAMP_S = 2.0                 # s a car takes from 0 to the charger's maximum (and back)
METER_INTERVAL_S = 10.0      # MeterValueSampleInterval as most chargers ship
SAMPLE_S = 0.1               # the bench's own look at the real currents
OSCILLATION_S = 1.5          # an increase lowered again within this is counted as undone
ID_TAG = "SCENARIO-CAR"


@dataclass(frozen=True)
class Car:
    plug_at: float                   # s after the scenario's start: plugged in and started at once
    max_current: float = 32.0
    phases: int = 3
    # s before the car follows a new pilot signal; with the ramp it stays within the 5 s IEC 61851 allows.
    reaction_s: float = 2.0
    leave_at: float | None = None


@dataclass(frozen=True)
class Charger:
    id: str
    rotation: str = "RST"
    max_current: float = 32.0
    car: Car | None = None
    ignores_profiles: bool = False   # accepts profiles and offers its maximum anyway (a firmware fault)


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    limit: float                                 # A per phase: the grid connection's fuse
    chargers: tuple[Charger, ...]
    base: tuple[tuple[float, Phases], ...]       # (from s, building A per phase), the first from 0
    duration: float = 120.0
    failsafe_load: float | None = None
    events: tuple[tuple[float, str, str], ...] = ()   # (at s, meter_silent|meter_back|offline|online, charger)
    ripple: float = 0.3                          # A: the building's flicker, drawn per second (seeded)

    def scaled(self, factor: float) -> Scenario:
        """The same story in `factor` of the time (--quick); reaction delays and ramps stay what they are."""
        cars = tuple(replace(c, car=replace(c.car, plug_at=c.car.plug_at * factor,
                                            leave_at=None if c.car.leave_at is None else c.car.leave_at * factor))
                     if c.car else c for c in self.chargers)
        return replace(self, duration=self.duration * factor, chargers=cars,
                       base=tuple((t * factor, load) for t, load in self.base),
                       events=tuple((t * factor, kind, arg) for t, kind, arg in self.events))

    def base_at(self, t: float) -> Phases:
        """The building's current per phase at `t`: the script plus a seeded flicker that changes every second."""
        load = self.base[0][1]
        for start, value in self.base:
            if t >= start:
                load = value
        rng = random.Random(f"{self.name}:{math.floor(t)}")
        return tuple(max(0.0, a + rng.uniform(-self.ripple, self.ripple)) for a in load)  # type: ignore[return-value]

    def leave(self, car: Car) -> float:
        return self.duration if car.leave_at is None else min(car.leave_at, self.duration)


class ReactingChargePoint(SimulatedChargePoint):
    """A simulated charger whose car follows a changed profile only after `reaction_s`.

    The charger keeps its profiles as OCPP says (simulator.smart_charging
    installs, replaces and clears them), but each change reaches the car late:
    a profile that arrives becomes valid `reaction_s` from now, and the one it
    replaces stays valid until then. The simulator's own profile rules then give
    the car's target at every instant, and its ramp does the rest.
    """

    def __init__(self, *args: Any, reaction_s: float = 0.0, **kwargs: Any) -> None:
        self.reaction_s = reaction_s
        self._profiles: list[profiles.Installed] = []
        self._ready = False
        self._timers: list[asyncio.TimerHandle] = []
        super().__init__(*args, **kwargs)
        self._ready = True

    @property  # type: ignore[override]
    def charging_profiles(self) -> list[profiles.Installed]:
        return self._profiles

    @charging_profiles.setter
    def charging_profiles(self, new: list[profiles.Installed]) -> None:
        new = list(new)
        if not self._ready or self.reaction_s <= 0:
            self._profiles = new
            return
        now = self.wall_clock()
        then = now + timedelta(seconds=self.reaction_s)
        def live(items: list[profiles.Installed]) -> list[profiles.Installed]:
            return [i for i in items if not (i.profile.valid_to and i.profile.valid_to <= now)]
        old, new = live(self._profiles), live(new)
        kept = [replace(i, profile=replace(i.profile, valid_to=min(i.profile.valid_to or then, then)))
                for i in old if i not in new]
        added = [replace(i, profile=replace(i.profile, valid_from=max(i.profile.valid_from or then, then)))
                 for i in new if i not in old]
        self._profiles = [i for i in new if i in old] + added + kept
        # The physics integrate with the target set at the last settle: settle
        # when the car takes the change, so it does not wait for the next read.
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._timers = [h for h in self._timers if not h.cancelled() and h.when() > loop.time()]
            self._timers.append(loop.call_later(self.reaction_s + 0.01, self.settle))


@dataclass
class Overload:
    """Per site phase, in continuous time: how long and how far above the fuse.

    Each overload (a stretch of time above the fuse on one phase) may last the
    reaction window; every A·s after that counts as beyond it."""

    window: float = WINDOW_S
    started: dict[int, float] = field(default_factory=dict)
    beyond_window_as: float = 0.0
    total_as: float = 0.0
    max_excess_a: float = 0.0
    longest_s: float = 0.0
    episodes: int = 0

    def add(self, t: float, phase: int, excess: float, dt: float) -> None:
        if excess <= 1e-6:
            self.started.pop(phase, None)
            return
        if phase not in self.started:
            self.started[phase] = t
            self.episodes += 1
        lasted = t - self.started[phase]
        self.total_as += excess * dt
        self.max_excess_a = max(self.max_excess_a, excess)
        self.longest_s = max(self.longest_s, lasted + dt)
        if lasted + dt > self.window:
            self.beyond_window_as += excess * min(dt, lasted + dt - self.window)

    def report(self) -> dict:
        return {"beyond_window_as": round(self.beyond_window_as, 1), "total_as": round(self.total_as, 1),
                "max_excess_a": round(self.max_excess_a, 1), "longest_s": round(self.longest_s, 1),
                "episodes": self.episodes}


def oscillations(limits: list[tuple[float, float]], within: float = OSCILLATION_S) -> int:
    """Increases lowered again within `within` s: (t, limit) in the order the charger accepted them."""
    count = 0
    for i in range(1, len(limits)):
        t, limit = limits[i]
        if limit <= limits[i - 1][1] + 1e-9:
            continue
        if any(later < limit - 1e-9 for s, later in limits[i + 1:] if s - t <= within):
            count += 1
    return count


class World:
    """One scenario against one controller, in real time.

    `attach(url)` is called with the meter's port and returns the controller's
    OCPP URL (the caller starts the controller in between)."""

    def __init__(self, scenario: Scenario, label: str) -> None:
        self.scenario = scenario
        self.label = label
        self.maps = {c.id: phase_map(3, c.rotation) for c in scenario.chargers}
        self.sims: dict[str, ReactingChargePoint] = {}
        self.meter = SimulatedMeter(self.currents)
        self.t0: float | None = None
        self.overload = Overload()
        self.profiles: dict[str, list[tuple[float, float]]] = {c.id: [] for c in scenario.chargers}
        self.energy_at_start: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._background: list[asyncio.Task] = []
        self.peak: list[float] = [0.0, 0.0, 0.0]
        self.shed_as = 0.0      # A·phase·s the cars would have had to give up to keep every phase within the fuse
        # --timeline: once a second, the real building, each car's offered limit and draw, and what the
        # controller's probe (if any) says it saw; for accounting where the energy goes.
        self.timeline: list[dict] | None = None
        self.probe: Callable[[], dict] | None = None

    def now(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def currents(self) -> Phases:
        """What really flows on each site phase: the building plus the cars (the meter's reading)."""
        total = list(self.scenario.base_at(self.now()))
        for cid, sim in self.sims.items():
            for p, amps in enumerate(to_site(sim.connector(1).current, self.maps[cid])):
                total[p] += amps
        return (total[0], total[1], total[2])

    async def start_meter(self) -> int:
        return await self.meter.start_tcp()

    def _listener(self, cid: str) -> Callable[[str, dict], None]:
        def on_event(name: str, data: dict) -> None:
            if name == "charging_profile" and data.get("purpose") == profiles.TX and self.t0 is not None:
                self.profiles[cid].append((self.now(), float(data["limits"][0])))
        return on_event

    async def connect(self, url: str) -> None:
        """The chargers connect and boot; returns when every one was accepted."""
        for c in self.scenario.chargers:
            sim = ReactingChargePoint(c.id, url, reconnect_delay=0.2, meter_interval=METER_INTERVAL_S,
                                      ramp_seconds=RAMP_S, max_current=c.max_current, phases=3,
                                      reaction_s=c.car.reaction_s if c.car else 0.0, on_event=self._listener(c.id))
            sim.ignores_limits = c.ignores_profiles
            self.sims[c.id] = sim
            self._tasks[c.id] = asyncio.create_task(sim.run())
        for sim in self.sims.values():
            await sim.wait_accepted(timeout=30)

    async def play(self, t0: float) -> None:
        """The script from `t0` (time.monotonic()) to the end, sampling the real currents meanwhile."""
        self.t0 = t0
        self.energy_at_start = {cid: sim.connector(1).energy_wh for cid, sim in self.sims.items()}
        script: list[tuple[float, Callable[[], Any]]] = []
        for c in self.scenario.chargers:
            if c.car is not None:
                script.append((c.car.plug_at, lambda c=c: self._arrive(c)))
                if c.car.leave_at is not None and c.car.leave_at < self.scenario.duration:
                    script.append((c.car.leave_at, lambda c=c: self._leave(c)))
        for at, kind, arg in self.scenario.events:
            script.append((at, lambda kind=kind, arg=arg: self._event(kind, arg)))
        script.sort(key=lambda item: item[0])
        sampler = asyncio.create_task(self._sample())
        try:
            for at, action in script:
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                action()
            await asyncio.sleep(max(0.0, t0 + self.scenario.duration - time.monotonic()))
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    def _spawn(self, coro: Any) -> None:
        self._background.append(asyncio.create_task(coro))

    def _arrive(self, charger: Charger) -> None:
        car = charger.car
        assert car is not None
        sim = self.sims[charger.id]

        async def arrive() -> None:
            await sim.plug_in(1, car_max_current=car.max_current, car_phases=car.phases, soc=20.0)
            if await sim.authorize(ID_TAG) != "Accepted":
                raise RuntimeError(f"{sim.id}: the scenario's id tag was not accepted")
            await sim.start_transaction(1, ID_TAG)
        self._spawn(arrive())

    def _leave(self, charger: Charger) -> None:
        sim = self.sims[charger.id]

        async def leave() -> None:
            await sim.stop_transaction(1, "EVDisconnected")
            await sim.unplug(1)
        self._spawn(leave())

    def _event(self, kind: str, arg: str) -> None:
        if kind == "meter_silent":
            self.meter.silent = True
        elif kind == "meter_back":
            self.meter.silent = False
        elif kind == "offline":
            # Its network is cut: the charger keeps its profiles and its car charges on.
            self._tasks[arg].cancel()
        elif kind == "online":
            self._tasks[arg] = asyncio.create_task(self.sims[arg].run())
        else:
            raise ValueError(f"unknown scenario event {kind!r}")

    async def _sample(self) -> None:
        assert self.t0 is not None
        limit = self.scenario.limit
        last = self.now()
        next_row = 0.0
        while True:
            await asyncio.sleep(SAMPLE_S)
            t = self.now()
            dt, last = t - last, t
            currents = self.currents()
            for p, amps in enumerate(currents):
                self.peak[p] = max(self.peak[p], amps)
                self.overload.add(t - dt, p, amps - limit, dt)
            if max(currents) > limit:
                cars = [to_site(sim.connector(1).current, self.maps[cid]) for cid, sim in self.sims.items()]
                self.shed_as += shed_amps([a - limit for a in currents], cars) * dt
            if self.timeline is not None and t >= next_row:
                next_row = math.floor(t) + 1.0
                self.timeline.append(self._row(t))

    def _row(self, t: float) -> dict:
        cars = {}
        for cid, sim in self.sims.items():
            c = sim.connector(1)
            cars[cid] = {"offered": round(sim.offered_current(1), 2), "current": [round(a, 2) for a in c.current]}
        row = {"t": round(t, 2), "base": [round(a, 2) for a in self.scenario.base_at(t)], "cars": cars}
        if self.probe is not None:
            with contextlib.suppress(Exception):
                row["controller"] = self.probe()
        return row

    def car_hours(self) -> float:
        return sum(self.scenario.leave(c.car) - c.car.plug_at for c in self.scenario.chargers if c.car) / 3600.0

    def report(self) -> dict:
        energy = {cid: (sim.connector(1).energy_wh - self.energy_at_start.get(cid, 0.0)) / 1000.0
                  for cid, sim in self.sims.items()}
        sent = sum(len(v) for v in self.profiles.values())
        hours = self.car_hours()
        # A·s over the fuse on a phase, at 230 V: energy no controller may count as delivered.
        over_kwh = self.overload.total_as * VOLTAGE / 3.6e6
        return {
            "energy_kwh": round(sum(energy.values()), 4),
            "energy_over_fuse_kwh": round(over_kwh, 4),
            # What the cars drew because a phase was let over its fuse: the least they must have shed to keep
            # every phase within it, on every phase each draws on (bench/dlm_scenario_shed.py).
            "energy_shed_kwh": round(self.shed_as * VOLTAGE / 3.6e6, 4),
            "energy_kwh_per_charger": {cid: round(kwh, 4) for cid, kwh in energy.items()},
            "overload": self.overload.report(),
            "peak_a": [round(a, 1) for a in self.peak],
            "tx_profiles": sent,
            "tx_profiles_per_car_hour": round(sent / hours, 1) if hours > 0 else None,
            "increases_undone_within_1_5_s": sum(oscillations(v) for v in self.profiles.values()),
            **({"timeline": self.timeline} if self.timeline is not None else {}),
            "tx_profile_limits": {cid: [[round(t, 1), limit] for t, limit in v] for cid, v in self.profiles.items()},
        }

    async def close_chargers(self) -> None:
        for task in [*self._tasks.values(), *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks.values(), *self._background, return_exceptions=True)

    async def close_meter(self) -> None:
        await self.meter.stop()
