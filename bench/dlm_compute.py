"""How long one `allocate` takes for a site of N connectors.

The site is built the way installations look: a grid connection with a meter,
a few sub-circuits (one of them metered), 3-phase chargers with their phase
rotations spread and some 1-phase ones on each phase, some with two
connectors. About three in four connectors have a session with a measured
draw (a few 1-phase cars on 3-phase chargers, learned from their MeterValues),
one in ten of those prioritised; a few cars wait to start, a few sessions
are paused, one charger is offline. The limits are sized so the circuits
bind: the allocator has to share, pause and rotate, not just hand out maxima.

Each run gets one of a pool of input snapshots (meter and draws vary), so no
single path through the allocator is timed over and over. The topology is
built once, as in the edge, where it only changes with the config.
"""

from __future__ import annotations

import random
import statistics
import time

from bench.measure import percentile
from edge.dlm.allocate import allocate
from edge.dlm.model import STRATEGIES, Circuit, ConnectorState, Evse, Inputs, Topology
from edge.dlm.phases import NAMES, ROTATIONS, phase_map

SNAPSHOTS = 16


def topology(connectors: int, seed: int = 1) -> Topology:
    rng = random.Random(seed)
    subs = 2 if connectors < 50 else 4 if connectors < 200 else 8
    per_sub = connectors / subs
    circuits = [Circuit("grid", round(connectors * 9.0 + 40.0), meter="grid-meter", failsafe_load=60.0)]
    for s in range(subs):
        circuits.append(Circuit(f"sub-{s + 1}", round(per_sub * 10.0 + 16.0), parent="grid",
                                meter="sub-meter" if s == 0 else None))
    evses: list[Evse] = []
    n = 0
    while len(evses) < connectors:
        n += 1
        circuit = circuits[1 + (len(evses) * subs) // connectors].id
        one_phase = rng.random() < 0.15
        mapping = phase_map(1, phase=rng.choice(NAMES)) if one_phase else phase_map(3, rng.choice(ROTATIONS))
        max_current = rng.choice((16.0, 32.0)) if not one_phase else 32.0
        count = 2 if rng.random() < 0.2 and len(evses) + 2 <= connectors else 1
        for connector in range(1, count + 1):
            evses.append(Evse(f"CP{n:04d}", connector, circuit, mapping, max_current=max_current))
    return Topology(tuple(circuits), tuple(evses), 1.0)


def snapshot(site: Topology, rng: random.Random, now: float = 10_000.0) -> Inputs:
    states = []
    offline = site.evses[len(site.evses) // 2].charger_id
    for i, evse in enumerate(site.evses):
        roll = rng.random()
        if evse.charger_id == offline:
            states.append(ConnectorState(evse.key, session=True, controllable=False, reserve=evse.max_current))
        elif roll < 0.75:
            car_phases = 1 if (len(evse.phase_map) == 1 or rng.random() < 0.12) else 3
            amps = rng.uniform(5.5, min(evse.max_current, 32.0))
            measured = tuple(amps if p < car_phases else 0.0 for p in range(len(evse.phase_map)))
            paused = rng.random() < 0.08
            arrived = now - rng.uniform(60.0, 8 * 3600.0)
            states.append(ConnectorState(
                evse.key, session=True, measured=() if paused else measured,
                phases_in_use=car_phases if not paused else None,
                demand=amps + 1.0 if rng.random() < 0.3 else None, priority=rng.random() < 0.1, arrived=arrived,
                running_since=None if paused else arrived, paused_since=now - rng.uniform(0, 1200) if paused else None,
                safe_share=6.0))
        elif roll < 0.8:
            states.append(ConnectorState(evse.key, plugged=True, safe_share=6.0))
        else:
            states.append(ConnectorState(evse.key))
    drawn = [0.0, 0.0, 0.0]
    for state, evse in zip(states, site.evses):
        for amps, p in zip(state.measured, evse.phase_map):
            drawn[p] += amps
    grid = tuple(d + rng.uniform(20.0, 60.0) for d in drawn)
    sub = tuple(rng.uniform(5.0, 20.0) + d / len(site.circuits) for d in drawn)
    return Inputs(site, {"grid": grid, "sub-1": sub}, tuple(states), now, "fair")  # type: ignore[dict-item]


def time_allocate(connectors: int, runs: int, strategy: str = "fair", seed: int = 1) -> dict:
    site = topology(connectors, seed)
    rng = random.Random(seed)
    pool = []
    for _ in range(SNAPSHOTS):
        inputs = snapshot(site, rng)
        pool.append(Inputs(inputs.topology, inputs.meters, inputs.connectors, inputs.now, strategy))
    for inputs in pool:          # warm up: the topology's cached lookups, the interpreter's caches
        allocate(inputs)
    seconds, cpu = [], []
    wall_clock, cpu_clock = time.perf_counter, time.thread_time
    for i in range(runs):
        inputs = pool[i % SNAPSHOTS]
        started, cpu_started = wall_clock(), cpu_clock()
        allocate(inputs)
        cpu.append(cpu_clock() - cpu_started)
        seconds.append(wall_clock() - started)
    seconds.sort()
    cpu.sort()
    last = allocate(pool[0])
    return {
        "runs": runs,
        "circuits": len(site.circuits),
        "sessions": sum(1 for s in pool[0].connectors if s.session),
        "paused": sum(1 for d in last.decisions.values() if d.limit == 0),
        "median_ms": round(statistics.median(seconds) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),  # type: ignore[operator]
        "max_ms": round(seconds[-1] * 1000, 3),
        # CPU time of this thread only: without the time other processes took
        # the core away, which a wall-clock p99 on a shared machine mostly shows.
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 3),
        "cpu_p99_ms": round(percentile(cpu, 99) * 1000, 3),  # type: ignore[operator]
    }


def measure(sizes: tuple[int, ...], runs: dict[int, int], strategies: tuple[str, ...] = STRATEGIES,
            progress=lambda text: None) -> dict:
    out: dict = {}
    for n in sizes:
        out[str(n)] = {}
        for strategy in strategies:
            out[str(n)][strategy] = time_allocate(n, runs[n], strategy)
            figures = out[str(n)][strategy]
            progress(f"allocate, {n} connectors, {strategy}: median {figures['median_ms']} ms, "
                     f"p99 {figures['p99_ms']} ms")
    return out
